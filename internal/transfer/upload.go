package transfer

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultUploadStall is how long an upload to a server may move no bytes before the
// server gives up on it: the manager gives up on its own transfers after as long.
const DefaultUploadStall = 2 * time.Minute

// StallGuard serves h, cutting off a request body that moves no bytes for stall: an
// upload may take hours on a slow link, but a client that stops sending (crashed,
// cut off, or hostile) must not hold a connection and a handler for ever.
func StallGuard(stall time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Requests without a body are left alone: net/http is already reading ahead
		// on their connection to notice a hang-up, and a deadline there would cancel
		// a long download.
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(stall)) == nil {
				r.Body = &progressBody{ReadCloser: r.Body, rc: rc, stall: stall}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// progressBody moves its connection's read deadline on with every byte read, and
// lifts it at the end of the body.
type progressBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.stall))
	}
	return n, err
}

// MaxRanges is the most byte ranges one GET may ask for: the manager asks for one
// per request; a client asking for thousands of tiny ones would have the server
// build a huge multipart answer for the price of one header.
const MaxRanges = 16

// LimitRanges serves h, refusing (416) a request whose Range header asks for more
// than max ranges.
func LimitRanges(max int, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rng := r.Header.Get("Range"); rng != "" && strings.Count(rng, ",")+1 > max {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			fmt.Fprintf(w, "the Range header asks for %d ranges; this server serves at most %d per request: ask for fewer, larger ranges\n",
				strings.Count(rng, ",")+1, max)
			return
		}
		h.ServeHTTP(w, r)
	})
}
