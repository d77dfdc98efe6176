package repository

import (
	"context"
	"encoding/binary"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOverlayUploadWithoutHeaderRoomIsRefused: an uploaded overlay whose first cluster
// is too full (512-byte clusters, a header extension qemu does not know and keeps)
// for the repository's backing file name cannot be re-pointed at the repository's
// chain. That is the upload's fault, answered 400 with what is wrong and nothing
// kept — not a 500 the repository logs as its own failure, which a manager handing
// the workspace back retries for ever, sending the whole overlay each time.
func TestOverlayUploadWithoutHeaderRoomIsRefused(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	key := f.create("up", "", "")
	m, err := f.r.CheckOut(context.Background(), key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "overlay.qcow2")
	vsize := strconv.FormatInt(f.chain(key).VirtualSize, 10)
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "-u", "-b", "x", "-F", "raw", file, vsize).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Insert an unknown extension of 368 bytes before the ones qemu wrote, and move
	// the backing name after them: cluster 0 is then all but full.
	be := binary.BigEndian
	hl := int(be.Uint32(b[100:]))
	end := hl
	for be.Uint32(b[end:]) != 0 {
		end += 8 + (int(be.Uint32(b[end+4:]))+7)&^7
	}
	ext := make([]byte, 8+360)
	be.PutUint32(ext, 0x76777331)
	be.PutUint32(ext[4:], 360)
	head := append(append(append([]byte(nil), b[:hl]...), ext...), b[hl:end+8]...)
	be.PutUint64(head[8:], uint64(len(head)))
	head = append(head, 'x')
	if len(head) > 512 {
		t.Fatalf("crafted header of %d bytes", len(head))
	}
	copy(b, head)
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(file), "x"), nil, 0o644); err != nil { // its backing file
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "check", "-q", file).CombinedOutput(); err != nil {
		t.Fatalf("qemu does not take the crafted overlay: %v: %s", err, out)
	}
	before := f.files(key)
	_, rs := f.upload(key, "overlay", m.Token, b, SHA256Header, sha(b))
	if rs.code != http.StatusBadRequest || !strings.Contains(string(rs.body), "backing file name") {
		t.Errorf("upload of an overlay with no room for the backing file name: %d %s; want 400 saying so", rs.code, rs.body)
	}
	if after := f.files(key); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("the refused upload left files: %v → %v", before, after)
	}
}
