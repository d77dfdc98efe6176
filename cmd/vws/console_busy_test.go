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
	"strings"
	"sync"
	"testing"
	"time"
)

// vws console without --follow prints the console as it is and ends, even when the
// guest writes between every two answers (a job logging fast, a boot loop): it must
// not turn into a follow that never ends.
func TestCLIConsoleOfABusyGuestEnds(t *testing.T) {
	var mu sync.Mutex
	console := "line 0\n"
	requests := 0
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := regexp.MustCompile(`<mgr:Offset>(-?\d+)</mgr:Offset>`).FindSubmatch(body)
		off, _ := strconv.Atoi(string(m[1]))
		mu.Lock()
		defer mu.Unlock()
		requests++
		off = max(0, min(off, len(console)))
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>%d</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console[off:])), off, len(console))
		console += fmt.Sprintf("line %d\n", requests) // the guest writes on
	}))
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"console", "k", "--host", s.URL}, &stdout, &stderr)
	mu.Lock()
	defer mu.Unlock()
	if code != 0 || requests > 2 {
		t.Fatalf("vws console (no --follow) of a guest that keeps writing: exit %d after %d requests (%d lines printed); stderr %q",
			code, requests, strings.Count(stdout.String(), "\n"), stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "line 0\n") {
		t.Fatalf("printed %q", stdout.String())
	}
}

// A console longer than one answer (1 MiB) is still printed whole without --follow.
func TestCLIConsoleLongerThanOneAnswer(t *testing.T) {
	console := strings.Repeat("0123456789abcde\n", 5<<16) // 5 MiB
	s := fixedConsoleManager(console)
	defer s.Close()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"console", "k", "--host", s.URL}, &stdout, &stderr); code != 0 || stdout.String() != console {
		t.Fatalf("exit %d, printed %d of %d bytes; stderr %q", code, stdout.Len(), len(console), stderr.String())
	}
}

// fixedConsoleManager answers Console as a manager whose guest wrote console and
// nothing more, at most 1 MiB an answer.
func fixedConsoleManager(console string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := regexp.MustCompile(`<mgr:Offset>(-?\d+)</mgr:Offset>`).FindSubmatch(body)
		off, _ := strconv.Atoi(string(m[1]))
		off = max(0, min(off, len(console)))
		end := min(len(console), off+1<<20)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>%d</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console[off:end])), off, end)
	}))
}
