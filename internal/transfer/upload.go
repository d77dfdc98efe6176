package transfer

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultUploadStall is how long an upload to a server may move no bytes before the
// server gives up on it: the manager gives up on its own transfers after as long.
const DefaultUploadStall = 2 * time.Minute

// StallGuard serves h, cutting off a request body that moves no bytes for stall, and
// likewise an answer: an upload or a download may take hours on a slow link, but a
// client that stops sending or reading (crashed, cut off, or hostile) must not hold a
// connection, an open image and a handler for ever.
func StallGuard(stall time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// Requests without a body are left alone: net/http is already reading ahead
		// on their connection to notice a hang-up, and a deadline there would cancel
		// a long download.
		if r.Body != nil && r.Body != http.NoBody {
			if rc.SetReadDeadline(time.Now().Add(stall)) == nil {
				r.Body = &progressBody{ReadCloser: r.Body, rc: rc, stall: stall}
			}
		}
		pw := &progressWriter{ResponseWriter: w, rc: rc, stall: stall}
		h.ServeHTTP(pw, r)
		if pw.wrote {
			// What is buffered goes out under the bound too; the connection's next
			// request (a long operation) must not inherit it.
			_ = rc.Flush()
			_ = rc.SetWriteDeadline(time.Time{})
		}
	})
}

// progressWriter moves its connection's write deadline on before every write, so an
// answer fails once its client has read nothing of it for stall.
type progressWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	wrote bool
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.wrote = true
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps net/http's sendfile, a piece at a time so the deadline moves on.
func (w *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	// sendfile sees through one *io.LimitedReader (http.ServeContent's), not two.
	left := int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		src, left = lr.R, lr.N
		defer func() { lr.N = left }()
	}
	var total int64
	for left != 0 {
		// A piece must go within stall: 1 MiB asks at least ~8.7 KB/s of the client
		// (slower than any link an image crosses), at a sendfile call per MiB.
		piece := int64(1 << 20)
		if left > 0 {
			piece = min(piece, left)
		}
		w.wrote = true
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
		n, err := rf.ReadFrom(&io.LimitedReader{R: src, N: piece})
		total += n
		if left > 0 {
			left -= n
		}
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// ServeContent is http.ServeContent for a file of size bytes, except that a suffix
// range of zero bytes ("bytes=-0") is unsatisfiable, as RFC 9110 §14.1.2 says:
// net/http answers it 206 with an impossible Content-Range ("bytes N-(N-1)/N"). Such
// specs are dropped, and a Range of nothing else is answered 416.
func ServeContent(w http.ResponseWriter, r *http.Request, modtime time.Time, content io.ReadSeeker, size int64) {
	if rng, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
		var kept []string
		for _, spec := range strings.Split(rng, ",") {
			if !zeroSuffix(spec) {
				kept = append(kept, spec)
			}
		}
		if len(kept) == 0 {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			http.Error(w, "a range of the last 0 bytes is no bytes: ask for a suffix of at least 1 byte (bytes=-N)", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		r.Header.Set("Range", "bytes="+strings.Join(kept, ","))
	}
	http.ServeContent(w, r, "", modtime, content)
}

// zeroSuffix says whether a range spec asks for the last zero bytes, read as net/http
// reads it: "-0", and as well "-00", "- 0" or "-+0", which it parses to the same 0.
func zeroSuffix(spec string) bool {
	start, end, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok || strings.TrimSpace(start) != "" {
		return false
	}
	end = strings.TrimSpace(end)
	n, err := strconv.ParseInt(end, 10, 64)
	return err == nil && n == 0 && end != "" && end[0] != '-'
}
