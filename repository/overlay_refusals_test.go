package repository

import (
	"context"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
)

// TestOverlayUploadQemuCannotOpenIsRefused: an overlay qemu will not open read/write
// (QEMU marks an overlay corrupt when it finds its metadata inconsistent while the
// guest runs; an unknown incompatible feature) is bad input, answered 400 with what
// is wrong and nothing kept — not a 500 from the qemu-img run that re-points it, which
// the repository logs as its own failure.
func TestOverlayUploadQemuCannotOpenIsRefused(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	key := f.create("up", "", "")
	m, err := f.r.CheckOut(context.Background(), key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	good := f.managerOverlay(key, m.Token, m, "write -P 0xab 0 64k")
	for _, tt := range []struct {
		name     string
		incompat uint64
		want     string
	}{
		{"marked corrupt", 1 << 1, "corrupt"},
		{"unknown incompatible feature", 1 << 7, "incompatible"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := append([]byte(nil), good...)
			binary.BigEndian.PutUint64(bad[72:], binary.BigEndian.Uint64(bad[72:])|tt.incompat)
			before := f.files(key)
			_, rs := f.upload(key, "overlay", m.Token, bad, SHA256Header, sha(bad))
			if rs.code != http.StatusBadRequest || !strings.Contains(string(rs.body), tt.want) {
				t.Errorf("upload of an overlay %s: %d %s; want 400 saying %q", tt.name, rs.code, rs.body, tt.want)
			}
			if after := f.files(key); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("the refused upload left files: %v → %v", before, after)
			}
		})
	}
}
