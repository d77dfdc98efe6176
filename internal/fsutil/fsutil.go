// Package fsutil holds the small file-system steps several components need to make
// their files durable and to name them by content.
package fsutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// FreeBytes is the space an unprivileged writer may still use on the file system
// holding path.
func FreeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	// Blocks are counted in fragments (f_frsize); f_bsize is only the preferred
	// I/O size, which some file systems (FUSE, NFS) set apart from it.
	frsize := int64(st.Frsize)
	if frsize == 0 {
		frsize = int64(st.Bsize)
	}
	return int64(st.Bavail) * frsize, nil
}

// FileDigest hashes a file as the contract names images: "sha256:<hex>", with its size.
func FileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// SyncDir makes a directory entry (a new, renamed or removed file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SyncFile makes a file another process wrote (libvirtd's save image) durable, with
// its directory entry: written is not yet on disk until the page cache is flushed.
func SyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFileAtomic replaces path with data: written to path+".tmp", synced, renamed
// over path, and the directory synced, so a crash leaves the old or the new content
// and a reader (a server reloading its CA directory) never sees half a file. The
// temporary file has mode perm, whatever the umask, before any secret is written.
// It is created exclusively: a link planted at its name (x509up_u<uid>.tmp in /tmp)
// must not have the data written into the file it points at.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	create := func() (*os.File, error) { return os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600) }
	f, err := create()
	if errors.Is(err, fs.ErrExist) {
		// Left by a run killed before its rename, or planted: removing a name never
		// touches what it links to, and in a sticky directory (/tmp) fails for
		// another user's file, which then stays refused.
		os.Remove(tmp)
		f, err = create()
	}
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}
