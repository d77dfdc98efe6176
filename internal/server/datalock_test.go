package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestOneServerPerDataDirectory: a second server on a data directory in use is
// refused before it touches anything, naming the holder; once the first is closed,
// it starts.
func TestOneServerPerDataDirectory(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Roles: []string{"factory"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	first, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "in use by another vws serve (pid "+strconv.Itoa(os.Getpid())+")") || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("a second server on the same directory: %v", err)
	}
	first.Close()
	second, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("a server after the first was closed: %v", err)
	}
	second.Close()
}
