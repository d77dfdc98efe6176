package transfer

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	return len(p), nil
}

// TestStallGuardCutsAStalledDownload: a client that asks for an image and then stops
// reading it is cut off once the answer moves no bytes for the stall bound, rather
// than holding the connection, the open image and a handler for ever; one that reads
// slowly but steadily gets the whole answer.
func TestStallGuardCutsAStalledDownload(t *testing.T) {
	const stall = 300 * time.Millisecond
	const size = 256 << 20 // far more than the socket buffers hold
	returned := make(chan struct{}, 2)
	hs := httptest.NewServer(StallGuard(stall, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { returned <- struct{}{} }()
		n := int64(size)
		if r.URL.Path == "/small" {
			n = 256 << 10
		}
		ServeContent(w, r, time.Time{}, io.NewSectionReader(zeros{}, 0, n), n)
	})))
	defer hs.Close()

	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := io.ReadFull(conn, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	// And then reads no more.
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatalf("a download its client stopped reading still holds its handler after 10 s, with a %s stall bound", stall)
	}

	// Slow but moving: 16 KiB every tenth of the bound.
	conn2, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	fmt.Fprintf(conn2, "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	var got int64
	buf := make([]byte, 16<<10)
	for {
		time.Sleep(stall / 10)
		n, err := conn2.Read(buf)
		got += int64(n)
		if err != nil {
			break
		}
	}
	if got < 256<<10 {
		t.Errorf("a slow download that kept moving got %d bytes, less than the 256 KiB body", got)
	}
}
