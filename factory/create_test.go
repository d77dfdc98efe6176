package factory

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/repository/imagepool"
)

func TestPickBootImages(t *testing.T) {
	d := func(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }
	pool := []imagepool.Image{
		{Name: "base", Digest: d('a'), Format: "qcow2"},
		{Name: "vmlinuz", Digest: d('b'), Format: "raw"},
		{Name: "initrd", Digest: d('c'), Format: "raw"},
	}
	desc := func(k *describe.Kernel) *describe.Description {
		return &describe.Description{Software: &describe.Software{Kernel: k}}
	}
	k, i, err := pickBootImages(pool, desc(&describe.Kernel{Image: &describe.Image{Name: "vmlinuz"}, Initrd: &describe.Image{Digest: d('c')}}))
	if err != nil || k != d('b') || i != d('c') {
		t.Fatalf("by name and digest: %q %q %v", k, i, err)
	}
	if k, i, err := pickBootImages(pool, desc(&describe.Kernel{Version: "6.1"})); err != nil || k != "" || i != "" {
		t.Fatalf("no direct boot: %q %q %v", k, i, err)
	}
	if k, _, err := pickBootImages(pool, &describe.Description{}); err != nil || k != "" {
		t.Fatalf("no software: %v", err)
	}
	for _, c := range []struct {
		name string
		k    *describe.Kernel
		want error
		says string
	}{
		{"unknown kernel", &describe.Kernel{Image: &describe.Image{Name: "nope"}}, errdefs.ErrMetadata, "nope"},
		{"unknown initrd digest", &describe.Kernel{Image: &describe.Image{Name: "vmlinuz"}, Initrd: &describe.Image{Digest: d('f')}}, errdefs.ErrMetadata, d('f')},
		{"qcow2 kernel", &describe.Kernel{Image: &describe.Image{Name: "base"}}, errdefs.ErrMetadata, "qcow2"},
		{"initrd alone", &describe.Kernel{Initrd: &describe.Image{Name: "initrd"}}, errdefs.ErrMetadata, "kernel"},
	} {
		_, _, err := pickBootImages(pool, desc(c.k))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v", c.name, err)
		}
		if strings.Contains(err.Error(), "not in the pool") && !strings.Contains(errdefs.Advice(err), "vws image import") {
			t.Errorf("%s: advice %q", c.name, errdefs.Advice(err))
		}
	}
}

// TestUnwrapRemoteKeepsWhoseFaultItIs: the Repository's refusal of the caller's
// request reaches the caller as the same fault; its own failure stays a creation
// failure, not advice to correct the request.
func TestUnwrapRemoteKeepsWhoseFaultItIs(t *testing.T) {
	for _, c := range []struct {
		fe   *client.FaultError
		want error
	}{
		{&client.FaultError{Type: "WorkspaceQuotaExceededFault", Fault: &soap.Fault{Code: soap.CodeClient}}, errdefs.ErrQuotaExceeded},
		{&client.FaultError{Type: "WorkspaceMetadataFault", Fault: &soap.Fault{Code: soap.CodeClient}}, errdefs.ErrMetadata},
		{&client.FaultError{Type: "ServiceFault", Fault: &soap.Fault{Code: soap.CodeClient}}, errdefs.ErrBadRequest},
		{&client.FaultError{Type: "ServiceFault", Fault: &soap.Fault{Code: soap.CodeServer}}, errdefs.ErrCreation},
	} {
		if err := unwrapRemote(fmt.Errorf("call: %w", c.fe)); !errors.Is(err, c.want) {
			t.Errorf("%s (%s) unwrapped to %v, want %v", c.fe.Type, c.fe.Fault.Code, err, c.want)
		}
	}
}

// TestUnwrapRemotePassesTheDescriptionOn: the Repository's description is passed on as
// it was, its advice kept as advice, so the fault says each once.
func TestUnwrapRemotePassesTheDescriptionOn(t *testing.T) {
	fe := &client.FaultError{Type: "ResourceUnknownFault", Fault: &soap.Fault{Code: soap.CodeClient},
		Description: `resource unknown: image "gone" is not in the pool; import it with 'vws image import', or name one 'vws image list' shows`}
	err := unwrapRemote(fmt.Errorf("call: %w", fe))
	if !errors.Is(err, errdefs.ErrResourceUnknown) || err.Error() != `resource unknown: image "gone" is not in the pool` ||
		errdefs.Advice(err) != "import it with 'vws image import', or name one 'vws image list' shows" {
		t.Errorf("unwrapped to %q, advice %q", err, errdefs.Advice(err))
	}
}
