package server

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile, in the data directory, is held by the server using it: two servers on one
// directory would run two recovery sweeps over one store and two reconcilers over
// one manager journal.
const lockFile = "vws.lock"

// DataDirInUseError is the refusal of a data directory another vws process holds.
type DataDirInUseError struct {
	Dir    string
	Holder string // its pid, as it wrote it; "unknown" when it did not
}

func (e *DataDirInUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by another vws serve (pid %s)", e.Dir, e.Holder)
}

// LockDataDir takes dir for this process until release; the kernel lets go of it when
// the process dies, so a crash leaves nothing to clean up. Besides the server, the
// commands that must not run beside one (vws database copy) take it.
func LockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &DataDirInUseError{Dir: dir, Holder: cmp.Or(strings.TrimSpace(string(holder)), "unknown")}
		}
		return nil, fmt.Errorf("lock the data directory %s: %w", dir, err)
	}
	// Who holds it, for the message above: informative only, the lock is the flock.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
