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
	"testing"
	"time"
)

// vws console -f behind by more than one answer (1 MiB) asks again at once, not after
// its half-second pause: paced at 1 MiB per pause it could not keep up with a guest
// writing 2 MiB/s, and virtlogd would rotate away what it had not read yet.
func TestCLIConsoleFollowCatchesUpWithoutPausing(t *testing.T) {
	console := strings.Repeat("0123456789abcde\n", 8<<16) // 8 MiB already written: 7 pauses
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"console", "k", "-f", "--host", s.URL}, &stdout, &stderr)
	if stdout.Len() != len(console) {
		t.Fatalf("following for 3 s a console 8 MiB long printed %d bytes of it; stderr %q", stdout.Len(), stderr.String())
	}
}
