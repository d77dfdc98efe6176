package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSecondSignalEndsTheShutdown: a second SIGTERM while vws serve waits for the
// requests under way to finish ends it at once, as an operator who sends it expects.
// vws serve runs in a child process (this test binary), which the signals may end.
func TestServeSecondSignalEndsTheShutdown(t *testing.T) {
	if os.Getenv("VWS_TEST_SERVE_CHILD") != "" {
		shutdownGrace = time.Minute // the shutdown waits for the upload below
		os.Exit(run(context.Background(), []string{"serve", "--insecure", "--role", "factory,repository",
			"--listen", os.Getenv("VWS_TEST_SERVE_LISTEN"), "--data", os.Getenv("VWS_TEST_SERVE_DATA")}, os.Stdout, os.Stderr))
	}
	addr := freeAddr(t)
	child := exec.Command(os.Args[0], "-test.run=^TestServeSecondSignalEndsTheShutdown$")
	child.Env = append(os.Environ(), "VWS_TEST_SERVE_CHILD=1", "VWS_TEST_SERVE_LISTEN="+addr, "VWS_TEST_SERVE_DATA="+t.TempDir())
	var logged bytes.Buffer
	child.Stderr = &logged
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	defer child.Process.Kill() // nothing once it has exited
	base := "http://" + addr
	waitHealthy(t, base)
	// An upload that trickles in for longer than the test waits: the shutdown waits
	// for it.
	body, feed := io.Pipe()
	defer feed.Close()
	go func() {
		for range 300 {
			if _, err := feed.Write([]byte(strings.Repeat("x", 512))); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		req, _ := http.NewRequest(http.MethodPut, base+"/images?name=slow", body)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	child.Process.Signal(syscall.SIGTERM)
	time.Sleep(time.Second) // the shutdown has begun, and waits
	select {
	case err := <-exited:
		t.Fatalf("vws serve stopped (%v) before the second signal; the upload did not hold it:\n%s", err, logged.String())
	default:
	}
	child.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("a second SIGTERM during the shutdown did not end vws serve within 5s:\n%s", logged.String())
	}
}
