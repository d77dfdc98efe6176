package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
)

// fullDisk is a standard output whose every write fails, as a file on a full disk does.
type fullDisk struct{}

func (fullDisk) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// vws console > FILE on a full disk saved nothing: it must not exit 0 as if the
// console were in FILE.
func TestCLIConsoleThatCannotBeWrittenFails(t *testing.T) {
	console := "Linux version 6.1.0\nhello from the guest\n"
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`+
			`<mgr:ConsoleResponse xmlns:mgr="http://vws.dev/ns/2026/manager"><mgr:Text>%s</mgr:Text>`+
			`<mgr:Offset>0</mgr:Offset><mgr:Size>%d</mgr:Size></mgr:ConsoleResponse></s:Body></s:Envelope>`,
			base64.StdEncoding.EncodeToString([]byte(console)), len(console))
	}))
	defer s.Close()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"console", "k", "--host", s.URL}, fullDisk{}, &stderr)
	if code != exitError || !bytes.Contains(stderr.Bytes(), []byte(syscall.ENOSPC.Error())) {
		t.Fatalf("want exit 1 saying the console could not be written, got exit %d, stderr %q", code, stderr.String())
	}
}
