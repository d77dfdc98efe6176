package vmm

import (
	"errors"
	"strings"
	"testing"

	"libvirt.org/go/libvirt"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestWrapAdvisesOnNetworks: a guest whose network is missing or not started fails to
// start with advice that says so, not the general "retry when the hypervisor is back".
func TestWrapAdvisesOnNetworks(t *testing.T) {
	for _, tt := range []struct {
		err    libvirt.Error
		advice string
	}{
		{libvirt.Error{Code: libvirt.ERR_NO_NETWORK, Message: "Network not found: no network with matching name 'lab'"}, "deploy it on a host that has it"},
		{libvirt.Error{Code: libvirt.ERR_OPERATION_INVALID, Message: "Requested operation is not valid: network 'lab' is not active"}, "virsh net-start lab"},
		{libvirt.Error{Code: libvirt.ERR_OPERATION_INVALID, Message: "Requested operation is not valid: domain is already running"}, ""},
	} {
		err := wrap("start", "vws-x", tt.err)
		if !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), tt.err.Message) {
			t.Errorf("%s: %v is not a hypervisor error with libvirt's message", tt.err.Message, err)
		}
		if got := errdefs.Advice(err); tt.advice == "" && got != "" || !strings.Contains(got, tt.advice) {
			t.Errorf("%s: advice %q, want one saying %q", tt.err.Message, got, tt.advice)
		}
	}
	if got := quoted("no quotes"); got != "NAME" {
		t.Errorf("quoted without quotes = %q", got)
	}
}
