//go:build unix

package client

import (
	"os"
	"syscall"
)

// fileOwner is the user owning fi's file.
func fileOwner(fi os.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}
