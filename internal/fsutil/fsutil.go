// Package fsutil holds the small file-system steps several components need to make
// their files durable and to name them by content.
package fsutil

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

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
