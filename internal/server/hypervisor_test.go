package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/test/sockproxy"
	"github.com/vws-grid/vws/vmm"
)

// TestHostStatusWhileLibvirtdNeverAnswered: a manager started while libvirtd accepts
// connections but answers nothing still answers for its host within the host-status
// bound, saying why, instead of waiting out the whole libvirt timeout (or for good).
func TestHostStatusWhileLibvirtdNeverAnswered(t *testing.T) {
	l := &lazyHypervisor{cfg: vmm.Config{URI: sockproxy.Silent(t).URI(), Timeout: time.Minute}}
	t.Cleanup(l.Close)
	for i, bound := range []time.Duration{hostOpenWait + 3*time.Second, time.Second} {
		t0 := time.Now()
		_, err := l.Host(t.Context())
		if d := time.Since(t0); d > bound || !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), "still connecting") {
			t.Errorf("host status %d with libvirtd silent since start-up: %v after %s (bound %s)", i, err, d.Round(time.Millisecond), bound)
		}
	}
	t0 := time.Now()
	if dt := l.DomainType(); dt != "" || time.Since(t0) > time.Second {
		t.Errorf("DomainType before libvirt was opened: %q after %s; want \"\" at once", dt, time.Since(t0))
	}
}
