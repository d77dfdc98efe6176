package repository

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestExpiredWhileDownGivesItsQuotaBackOnce: a workspace whose lifetime ran out while
// the repository was down is destroyed as it starts, and its quota given back exactly
// once: the owner then holds one workspace and may create one more under workspaces=2.
func TestExpiredWhileDownGivesItsQuotaBackOnce(t *testing.T) {
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=alice workspaces=2\n")
	doomed, err := f.createFor(alice, "doomed", 1500*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.mustCreateFor(alice, "kept", 0)
	// Other users' workspaces: the start-up sweep has these to look at too.
	for i := 0; i < 30; i++ {
		f.mustCreateFor(bob, fmt.Sprintf("bob%d", i), 0)
	}
	f.r.Close() // the server stops; doomed's lifetime runs out meanwhile
	time.Sleep(2 * time.Second)
	f.quotaOpen("quota /O=Grid/CN=alice workspaces=2\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, _, err := f.r.Owner(context.Background(), doomed); errors.Is(err, errdefs.ErrResourceUnknown) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired workspace was not destroyed at start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if u := f.r.ledger.Usage("dn:" + alice.DN); u.Workspaces != 1 {
		t.Errorf("after the restart alice holds 1 workspace, but the quota ledger counts %d", u.Workspaces)
	}
	if _, err := f.createFor(alice, "second", 30*time.Minute, 0); err != nil {
		t.Fatalf("a second workspace under workspaces=2: %v", err)
	}
	if _, err := f.createFor(alice, "third", 30*time.Minute, 0); !errors.Is(err, errdefs.ErrQuotaExceeded) {
		t.Fatalf("a third workspace under workspaces=2 was not refused for the quota: %v", err)
	}
}

// TestMemoryUploadBoundedByGuestRAM: a memory image is at most the guest's RAM plus
// its device state: the saved RAM of a 1 MiB guest is refused when it is 512 MiB,
// before it is read.
func TestMemoryUploadBoundedByGuestRAM(t *testing.T) {
	f := newFixture(t)
	key := f.mustCreateFor(alice, "tiny", 1)
	m, err := f.r.CheckOut(context.Background(), key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	const size = 512 << 20
	req, _ := http.NewRequest(http.MethodPut, "/workspaces/"+key+"/memory", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	req.Header.Set(LockTokenHeader, m.Token)
	rec := &statusRecorder{h: http.Header{}}
	f.r.FilesHandler().ServeHTTP(rec, req)
	if rec.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a %d-byte memory image of a guest with 1 MiB of RAM was answered %d (%s), not 413", size, rec.code, strings.TrimSpace(rec.body.String()))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type statusRecorder struct {
	h    http.Header
	code int
	body strings.Builder
}

func (r *statusRecorder) Header() http.Header { return r.h }
func (r *statusRecorder) WriteHeader(c int)   { r.code = c }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}

// TestCheckOutRequestIDBounded: a CheckOut's RequestID is kept in the workspace's
// record when a host withdraws it: a long one is refused, so that no host, holder or
// not, may grow a record without bound.
func TestCheckOutRequestIDBounded(t *testing.T) {
	f := newFixture(t)
	key := f.create("victim", "", "")
	for i := 0; i < 8; i++ {
		id := fmt.Sprintf("%d-%s", i, strings.Repeat("r", 256<<10))
		if _, err := f.r.CheckOut(context.Background(), key, "some-host", id, nil, nil); !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), "at most 128 are taken") {
			msg := fmt.Sprint(err)
			t.Fatalf("withdrawal %d with a 256 KiB RequestID: %.200s", i, msg)
		}
	}
	if _, err := f.r.CheckOut(context.Background(), key, "some-host", "a-uuid-sized-id", nil, nil); !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("a withdrawal with a short RequestID: %v", err)
	}
	var n int
	f.r.Workspaces.View(context.Background(), key, func(s *wsrf.Snapshot) error { n = len(s.Private); return nil })
	if n > 64<<10 {
		t.Fatalf("eight withdrawn check-outs of a host that never held workspace %s grew its stored record to %d bytes", key, n)
	}
}
