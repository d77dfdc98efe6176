package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSecondSignalEndsTheShutdown: a second SIGTERM or SIGINT, whichever the
// first was, while vws serve waits for the requests under way to finish ends it at
// once, as an operator who sends it expects (systemd's stop, then Ctrl-C).
// vws serve runs in a child process (this test binary, with main's context), which
// the signals may end.
func TestServeSecondSignalEndsTheShutdown(t *testing.T) {
	if os.Getenv("VWS_TEST_SERVE_CHILD") != "" {
		shutdownGrace = time.Minute // the shutdown waits for the upload below
		os.Exit(run(interruptContext(), []string{"serve", "--insecure", "--role", "factory,repository",
			"--listen", os.Getenv("VWS_TEST_SERVE_LISTEN"), "--data", os.Getenv("VWS_TEST_SERVE_DATA")}, os.Stdout, os.Stderr))
	}
	for _, tc := range []struct {
		name          string
		first, second syscall.Signal
	}{
		{"SIGTERM then SIGTERM", syscall.SIGTERM, syscall.SIGTERM},
		{"SIGTERM then SIGINT", syscall.SIGTERM, syscall.SIGINT},
		{"SIGINT then SIGTERM", syscall.SIGINT, syscall.SIGTERM},
		{"SIGINT then SIGINT", syscall.SIGINT, syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) { testServeSecondSignal(t, tc.first, tc.second) })
	}
}

func testServeSecondSignal(t *testing.T, first, second syscall.Signal) {
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
	child.Process.Signal(first)
	time.Sleep(time.Second) // the shutdown has begun, and waits
	select {
	case err := <-exited:
		t.Fatalf("vws serve stopped (%v) before the second signal; the upload did not hold it:\n%s", err, logged.String())
	default:
	}
	child.Process.Signal(second)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("a second signal (%v after %v) during the shutdown did not end vws serve within 5s:\n%s", second, first, logged.String())
	}
}
