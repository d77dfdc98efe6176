package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func TestCopyHashed(t *testing.T) {
	data := make([]byte, 5*chunkSize+123) // more chunks than the ring holds, a partial last one
	for i := range data {
		data[i] = byte(i * 7)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, head, err := CopyHashed(context.Background(), f, iotest.HalfReader(bytes.NewReader(data)), h, Options{HeadLen: 16})
	if err != nil || n != int64(len(data)) || !bytes.Equal(head, data[:16]) {
		t.Fatalf("n=%d head=%x err=%v", n, head, err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("hash differs from sha256 of the data")
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, data) {
		t.Fatal("written bytes differ")
	}
}

func TestCopyHashedErrors(t *testing.T) {
	ctx := context.Background()
	refused := errors.New("not an image")
	_, _, err := CopyHashed(ctx, io.Discard, bytes.NewReader(make([]byte, 100)), sha256.New(),
		Options{HeadLen: 10, Inspect: func([]byte) error { return refused }})
	if !errors.Is(err, refused) {
		t.Errorf("inspect refusal: %v", err)
	}
	// A truncated body is a read error, never a complete copy.
	var re *ReadError
	_, _, err = CopyHashed(ctx, io.Discard, io.MultiReader(bytes.NewReader(make([]byte, 10)), iotest.ErrReader(io.ErrUnexpectedEOF)), sha256.New(), Options{})
	if !errors.As(err, &re) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated source: %v", err)
	}
	var we *WriteError
	f, err := os.Open(os.DevNull) // read-only: writes fail
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, err = CopyHashed(ctx, f, bytes.NewReader(make([]byte, 10)), sha256.New(), Options{})
	if !errors.As(err, &we) {
		t.Errorf("failing destination: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err = CopyHashed(cctx, io.Discard, bytes.NewReader(make([]byte, 10)), sha256.New(), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
