package notify

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
)

// notifyFor is a Notify for consumer c carrying padding bytes of text.
func notifyFor(t *testing.T, c *Consumer, padding int) []byte {
	t.Helper()
	d := dialect.WSRF12
	body := etree.NewElement("wsnt:Notify")
	body.CreateAttr("xmlns:wsnt", d.BN)
	nm := body.CreateElement("wsnt:NotificationMessage")
	topic := nm.CreateElement("wsnt:Topic")
	topic.CreateAttr("Dialect", "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple")
	topic.CreateAttr("xmlns:t", "http://vws.dev/ns/2026/workspace")
	topic.SetText("t:state")
	nm.CreateElement("wsnt:Message").CreateElement("pad").SetText(strings.Repeat("x", padding))
	headers := d.WSA.MessageHeaders("http://127.0.0.1:9/", "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify")
	headers = append(headers, c.Reference(d.WSA, "http://127.0.0.1:9/").Headers()...)
	data, err := (&soap.Message{Headers: headers, Body: body}).Document().WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestConsumerCutsOffATrickledNotify: the listener of vws wsrf subscribe is reachable by
// whoever reaches the host; a client sending a Notify's body a byte at a time must be
// cut off soon, not hold a connection and a goroutine for as long as it likes.
func TestConsumerCutsOffATrickledNotify(t *testing.T) {
	c := &Consumer{Token: "t", Deliver: func(Notification) {}, bodyTimeout: 300 * time.Millisecond}
	hs := httptest.NewServer(c) // a server with no timeouts of its own
	defer hs.Close()
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 4000\r\n\r\n<")
	closed := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		_, _ = io.Copy(io.Discard, conn) // until the server closes the connection
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.After(5 * time.Second); ; {
		select {
		case took := <-closed:
			t.Logf("cut off after %s", took.Round(time.Millisecond))
			return
		case <-tick.C:
			_, _ = conn.Write([]byte("a"))
		case <-deadline:
			t.Fatal("a client trickling a Notify body held its connection for 5 s (body timeout 300 ms)")
		}
	}
}

// TestConsumerRefusesAnOversizeNotify: a Notify of vws is a few KiB (~8 signed); a far
// larger one, whose parse would keep ~30 bytes of tree per byte, is refused unparsed.
func TestConsumerRefusesAnOversizeNotify(t *testing.T) {
	var got atomic.Int32
	c := &Consumer{Token: "t", Deliver: func(Notification) { got.Add(1) }}
	for _, tc := range []struct {
		padding int
		want    int
	}{{4 << 10, http.StatusOK}, {200 << 10, http.StatusRequestEntityTooLarge}} {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(notifyFor(t, c, tc.padding))))
		if rec.Code != tc.want {
			t.Errorf("a Notify with %d KiB of content: HTTP %d %q, want %d", tc.padding>>10, rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
		}
	}
	if n := got.Load(); n != 1 {
		t.Errorf("%d messages delivered, want the small one only", n)
	}
}

// TestConsumerBoundsTheNotifiesInProcess: many Notify messages at once are parsed and
// handled a few at a time, not all at once, whoever sends them.
func TestConsumerBoundsTheNotifiesInProcess(t *testing.T) {
	var in, most atomic.Int32
	release := make(chan struct{})
	c := &Consumer{Token: "t", Deliver: func(Notification) {
		n := in.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		in.Add(-1)
	}}
	hs := httptest.NewServer(c)
	defer hs.Close()
	msg := notifyFor(t, c, 100)
	const sent = 12
	var wg sync.WaitGroup
	codes := make(chan int, sent)
	for range sent {
		wg.Go(func() {
			resp, err := http.Post(hs.URL, "text/xml", bytes.NewReader(msg))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	time.Sleep(500 * time.Millisecond) // for every message to have arrived
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("a Notify waiting its turn was answered HTTP %d", code)
		}
	}
	if m := most.Load(); m > notifyParsing {
		t.Fatalf("%d of %d Notify messages in process at once, want at most %d", m, sent, notifyParsing)
	}
}
