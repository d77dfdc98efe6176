package factory

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/hostfit"
)

// announced is a Hosts whose answer the test sets, counting the questions.
type announced struct {
	offers []hostfit.Offer
	err    error
	asked  int
}

func (a *announced) Offers(context.Context) ([]hostfit.Offer, error) {
	a.asked++
	return a.offers, a.err
}

// TestSiteOffer: the Factory says what the announced hosts run — a KVM host also plain
// QEMU, an x86_64 host also i686 guests — and its configured guess only while no host
// has announced itself or the Repository cannot say; it asks at most every offerTTL.
func TestSiteOffer(t *testing.T) {
	cfg := Config{}
	cfg.Defaults()
	hosts := &announced{}
	var logged bytes.Buffer
	s := &siteOffer{hosts: hosts, log: slog.New(slog.NewTextHandler(&logged, nil))}
	ctx := context.Background()
	want := func(what string, vmms, archs []string) {
		t.Helper()
		gotV, gotA := s.now(ctx, cfg)
		if !slices.Equal(gotV, vmms) || !slices.Equal(gotA, archs) {
			t.Fatalf("%s: VMM types %v, architectures %v; want %v, %v", what, gotV, gotA, vmms, archs)
		}
	}
	want("no host announced: the configured guess", cfg.VMMTypes, cfg.Architectures)

	hosts.offers = []hostfit.Offer{{DomainType: "qemu", Arch: "x86_64"}, {DomainType: "qemu", Arch: "aarch64"}}
	want("within offerTTL of the last answer: unchanged", cfg.VMMTypes, cfg.Architectures)
	if hosts.asked != 1 {
		t.Fatalf("asked the Repository %d times within offerTTL", hosts.asked)
	}
	s.read = time.Time{} // as if offerTTL had passed
	want("two TCG hosts", []string{"qemu"}, []string{"aarch64", "i686", "x86_64"})

	hosts.offers = append(hosts.offers, hostfit.Offer{DomainType: "kvm", Arch: "x86_64"})
	s.read = time.Time{}
	want("and a KVM host", []string{"kvm", "qemu"}, []string{"aarch64", "i686", "x86_64"})

	hosts.offers, hosts.err = nil, errors.New("repository unreachable")
	s.read = time.Time{}
	want("the Repository cannot say: the last answer", []string{"kvm", "qemu"}, []string{"aarch64", "i686", "x86_64"})
	asked := hosts.asked
	want("within offerTTL of an unanswered question: not asked again", []string{"kvm", "qemu"}, []string{"aarch64", "i686", "x86_64"})
	if hosts.asked != asked {
		t.Fatalf("an unanswering Repository was asked again within offerTTL (%d questions, not %d): every property read would wait for it", hosts.asked, asked)
	}
	s.read = time.Time{}
	want("still unanswered", []string{"kvm", "qemu"}, []string{"aarch64", "i686", "x86_64"})
	if n := strings.Count(logged.String(), "cannot read the hosts' announcements"); n != 1 {
		t.Fatalf("the unanswering Repository was logged %d times, want once:\n%s", n, logged.String())
	}
	if !strings.Contains(logged.String(), "repository unreachable") {
		t.Fatalf("the log does not say why:\n%s", logged.String())
	}

	hosts.err = nil
	s.read = time.Time{}
	want("every host gone quiet: the configured guess again", cfg.VMMTypes, cfg.Architectures)
	if !strings.Contains(logged.String(), "answers again") {
		t.Fatalf("the Repository's return is not logged:\n%s", logged.String())
	}
}

// TestSiteOfferOnlyWhatManagersDefine: a host of an architecture no manager defines
// guests for (a ppc64le or s390x machine running a manager) runs no workspace, so the
// Factory does not offer its architecture, nor its VMM type on its account.
func TestSiteOfferOnlyWhatManagersDefine(t *testing.T) {
	cfg := Config{}
	cfg.Defaults()
	hosts := &announced{offers: []hostfit.Offer{{DomainType: "qemu", Arch: "x86_64"}, {DomainType: "kvm", Arch: "ppc64le"}}}
	s := &siteOffer{hosts: hosts}
	vmms, archs := s.now(context.Background(), cfg)
	if !slices.Equal(vmms, []string{"qemu"}) || !slices.Equal(archs, []string{"i686", "x86_64"}) {
		t.Fatalf("a TCG x86_64 host and a KVM ppc64le one: VMM types %v, architectures %v; want [qemu], [i686 x86_64]", vmms, archs)
	}
}

// ctxHosts answers as a Repository client does: not once the caller's ctx has ended.
type ctxHosts struct{ offers []hostfit.Offer }

func (h ctxHosts) Offers(ctx context.Context) ([]hostfit.Offer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h.offers, nil
}

// TestSiteOfferOutlivesItsCaller: the announcements read once serve every caller for
// offerTTL, so a caller that hung up while they were read must not make that read
// fail — the properties would show the configured guess to everyone, and the log
// warn of an unanswering Repository that answers.
func TestSiteOfferOutlivesItsCaller(t *testing.T) {
	cfg := Config{}
	cfg.Defaults()
	var logged bytes.Buffer
	s := &siteOffer{hosts: ctxHosts{offers: []hostfit.Offer{{DomainType: "qemu", Arch: "aarch64"}}}, log: slog.New(slog.NewTextHandler(&logged, nil))}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	s.now(gone, cfg)
	if _, archs := s.now(context.Background(), cfg); !slices.Equal(archs, []string{"aarch64"}) || logged.Len() != 0 {
		t.Errorf("after a caller hung up during the read: architectures %v, log %q; want the announced aarch64 and no warning", archs, logged.String())
	}
}
