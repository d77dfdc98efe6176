package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to start writing [off, off+n) of f to disk now, without
// waiting, so that the disk works while bytes are still arriving and the fsync at
// its end has little left to do. Advisory: errors are ignored (fsync still decides).
func StartWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
