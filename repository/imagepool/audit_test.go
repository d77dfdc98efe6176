package imagepool

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
)

type records struct {
	mu  sync.Mutex
	got []string
}

func (r *records) Record(_ context.Context, operation, resource, decision, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, operation+" "+resource+" "+decision+" "+detail)
}

// The audit trail says which image an import brought in and a removal took away, by
// name and digest: the decision recorded before either has only the request.
func TestHTTPImportAndRemoveAreAudited(t *testing.T) {
	tp, hs := serveTestPool(t)
	log := &records{}
	tp.SetAudit(log)
	data := []byte("an image to audit")
	d := digestOf(data)
	if resp, body := do(t, http.MethodPut, hs.URL+"/images?name=audited", bytes.NewReader(data)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, http.MethodPut, hs.URL+"/images?name=again", bytes.NewReader(data)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT of the same content = %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, http.MethodDelete, hs.URL+"/images/audited", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", resp.StatusCode, body)
	}
	want := []string{
		"image-import audited done digest=" + d + " format=raw size=17 stored",
		"image-import again done digest=" + d + " format=raw size=17 deduplicated (the pool held its content already)",
		"image-remove audited done digest=" + d,
	}
	if len(log.got) != len(want) {
		t.Fatalf("audit records %q, want %q", log.got, want)
	}
	for i := range want {
		if log.got[i] != want[i] {
			t.Errorf("audit record %d: %q, want %q", i, log.got[i], want[i])
		}
	}
}
