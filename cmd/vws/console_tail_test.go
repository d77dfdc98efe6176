package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
)

// vws console --tail N shows whole lines only: the line the N bytes before the end
// cut into is left out, but not the line they start with when they start one.
func TestCLIConsoleTailKeepsALineItStartsAt(t *testing.T) {
	const console = "one\ntwo\nthree\n"
	// Answers as the manager does: a negative offset counts from the end.
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := regexp.MustCompile(`<mgr:Offset>(-?\d+)</mgr:Offset>`).FindSubmatch(body)
		off, _ := strconv.Atoi(string(m[1]))
		if off < 0 {
			off += len(console)
		}
		off = max(0, min(off, len(console)))
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>%d</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console[off:])), off, len(console))
	}))
	defer s.Close()
	for _, tc := range []struct{ tail, want string }{
		{"10", "two\nthree\n"}, // starts at "two": a whole line
		{"8", "three\n"},       // starts mid-"two"
		{"14", console},        // the whole console
		{"100", console},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"console", "k", "--host", s.URL, "--tail", tc.tail}, &stdout, &stderr)
		if code != 0 || stdout.String() != tc.want {
			t.Errorf("vws console --tail %s of %q: exit %d, printed %q, want %q; stderr %q", tc.tail, console, code, stdout.String(), tc.want, stderr.String())
		}
	}
}

// A console whose first 1000 bytes were rotated away, asked for a tail longer than
// what is kept: the manager answers all it keeps, from 1000 — no byte before the tail
// came with it, so nothing is dropped as if one had.
func TestCLIConsoleTailOfARotatedConsole(t *testing.T) {
	const console, base = "tick 7\ntick 8\n", 1000
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := regexp.MustCompile(`<mgr:Offset>(-?\d+)</mgr:Offset>`).FindSubmatch(body)
		off, _ := strconv.Atoi(string(m[1]))
		if off < 0 {
			off += base + len(console)
		}
		off = max(base, min(off, base+len(console)))
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>%d</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console[off-base:])), off, base+len(console))
	}))
	defer s.Close()
	for _, tc := range []struct{ tail, want string }{
		{"100", console},  // more than is kept: all of it
		{"7", "tick 8\n"}, // within what is kept, starting a line
		{"9", "tick 8\n"}, // within, starting mid-line
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"console", "k", "--host", s.URL, "--tail", tc.tail}, &stdout, &stderr)
		if code != 0 || stdout.String() != tc.want {
			t.Errorf("vws console --tail %s of a console kept from %d: exit %d, printed %q, want %q; stderr %q", tc.tail, base, code, stdout.String(), tc.want, stderr.String())
		}
	}
}
