package repository

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
)

// diskChain is a workspace's private record of its image files: the pool base, the
// frozen layers a clone left below it (bottom first), and its own active overlay. It
// is committed in the same database row as the workspace's properties.
type diskChain struct {
	Version     int     `json:"version"`
	Base        string  `json:"base"` // pool digest
	BaseFormat  string  `json:"baseFormat"`
	VirtualSize int64   `json:"virtualSize"`
	Layers      []layer `json:"layers,omitempty"`
	Overlay     string  `json:"overlay"` // file name in the workspace directory
	// Lock is the token of the manager that checked the workspace out, if any.
	Lock string `json:"lock,omitempty"`
}

// layer is a frozen overlay shared by a workspace and its clones.
type layer struct {
	ID     string `json:"id"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

const chainVersion = 1

func decodeChain(data []byte) (*diskChain, error) {
	var c diskChain
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("workspace disk record: %w", err)
	}
	if c.Version != chainVersion {
		return nil, fmt.Errorf("workspace disk record version %d is not %d", c.Version, chainVersion)
	}
	return &c, nil
}

func (c *diskChain) encode() []byte {
	data, err := json.Marshal(c)
	if err != nil {
		panic(err) // a plain struct of strings and ints always marshals
	}
	return data
}

// top is the file the next overlay must be backed by: the last layer, else the base.
func (c *diskChain) top(r *Repository) (path, format string, err error) {
	if n := len(c.Layers); n > 0 {
		return r.layerPath(c.Layers[n-1].ID), "qcow2", nil
	}
	p, err := r.pool.Path(c.Base)
	return p, c.BaseFormat, err
}

var idRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newID returns 128 random bits in hex: workspace keys and layer names. Being pure
// hex they are safe as file names.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

func (r *Repository) workspaceDir(key string) string { return filepath.Join(r.dir, "workspaces", key) }
func (r *Repository) layerPath(id string) string     { return filepath.Join(r.dir, "layers", id+".qcow2") }

// overlayName is the active overlay's file name for a generation.
func overlayName(gen int) string { return fmt.Sprintf("disk-%d.qcow2", gen) }

func nextOverlayName(current string) string {
	var gen int
	fmt.Sscanf(current, "disk-%d.qcow2", &gen)
	return overlayName(gen + 1)
}

// fileDigest hashes a file: the manifest names every image by content.
func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// syncDir makes a directory entry (a new or renamed file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
