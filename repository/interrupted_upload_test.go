package repository

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestInterruptedUploadIsNotARefusal: an upload whose body ends short (the connection
// dropped, or stalled past the guard) is not a refusal of its bytes: a manager takes
// 400 and 413 as "the same file would be refused again" and gives the hand-back up,
// so it must be answered with a status it retries (408), keeping nothing.
func TestInterruptedUploadIsNotARefusal(t *testing.T) {
	f := newFixture(t)
	key := f.create("cut", "", "")
	m, err := f.r.CheckOut(context.Background(), key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	changed := f.managerOverlay(key, m.Token, m, "write -P 0xab 0 64k")
	before := f.files(key)
	rs := f.do(http.MethodPut, "/workspaces/"+key+"/overlay", m.Token, io.MultiReader(bytes.NewReader(changed[:1000]), errReader{}),
		SHA256Header, sha(changed))
	if rs.code != http.StatusRequestTimeout || !strings.Contains(string(rs.body), "send it again") {
		t.Fatalf("an upload cut short after 1000 bytes is answered %d %s, want 408 (not a refusal of its bytes)", rs.code, rs.body)
	}
	if after := f.files(key); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("an interrupted upload left files: %v → %v", before, after)
	}
}
