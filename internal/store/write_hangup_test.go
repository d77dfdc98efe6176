package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestWriteOutlivesTheCallerHangingUp: a record write whose caller hung up is seen
// through. Cancelled mid-statement, the driver answers the context's error whether
// or not the statement committed, and a caller that then undoes what the record names
// (files it linked, a directory it made) leaves a committed record naming nothing.
func TestWriteOutlivesTheCallerHangingUp(t *testing.T) {
	db := storetest.Open(t)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	term := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := db.PutResource(gone, "svc", wsrf.StoredResource{Key: "k1", Properties: []byte("<p/>"), Termination: &term}); err != nil {
		t.Fatalf("a write whose caller hung up: %v, want it made", err)
	}
	got, err := db.LoadResources(context.Background(), "svc")
	if err != nil || len(got) != 1 || got[0].Key != "k1" {
		t.Fatalf("after the write: %+v, %v; want the record k1", got, err)
	}
	if err := db.DeleteResource(gone, "svc", "k1"); err != nil {
		t.Fatalf("a delete whose caller hung up: %v, want it made", err)
	}
	if got, err := db.LoadResources(context.Background(), "svc"); err != nil || len(got) != 0 {
		t.Fatalf("after the delete: %+v, %v; want no record", got, err)
	}
}
