package test

import (
	"bytes"
	"io"
	"os/exec"
	"testing"
)

// startDriven starts cmd, an outside client the test drives step by step over its
// stdin and stdout (one line each way per step). The caller defers done at once: then
// however the test ends, the client's stdin is closed and it is waited for (before a
// context that bounds it is cancelled); an exit status other than 0 fails the test
// when checkExit is set, and a failed test shows what the client wrote on stderr.
func startDriven(t *testing.T, cmd *exec.Cmd, name string, checkExit bool) (stdin io.WriteCloser, stdout io.ReadCloser, done func()) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err = cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return stdin, stdout, func() {
		stdin.Close()
		err := cmd.Wait()
		if err != nil && checkExit && !t.Failed() {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, stderr.String())
		}
	}
}
