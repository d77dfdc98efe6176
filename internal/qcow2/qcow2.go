// Package qcow2 writes empty copy-on-write qcow2 overlays and reads qcow2
// headers.
//
// vws creates one overlay per workspace on top of a base image. Shelling out
// to `qemu-img create` costs 10-25 ms per call (process start, thread pools,
// several fdatasyncs), while an empty overlay is only four pieces of
// metadata, so CreateOverlay writes it directly: three small pwrites, one
// ftruncate and one fsync, whatever the virtual size.
//
// The format is specified in QEMU's docs/interop/qcow2.txt. All fields are
// big-endian.
package qcow2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

const (
	magic = "QFI\xfb"

	// clusterBits 16 (64 KiB) is qemu-img's default and what vws images use.
	clusterBits = 16
	clusterSize = 1 << clusterBits

	// refcountOrder 4 means 16-bit refcounts (qemu's default), so one
	// refcount block holds clusterSize/2 entries.
	refcountOrder        = 4
	refcountBlockEntries = clusterSize * 8 / (1 << refcountOrder)

	// headerLength 112 = the 104 mandatory v3 bytes plus compression_type
	// (byte 104, 0 = zlib) and 7 bytes of zero padding. This is exactly what
	// qemu >= 5.1 writes, so our header is field-for-field identical to
	// qemu-img's; older qemu versions accept it because readers must ignore
	// (and preserve) header bytes they don't know.
	headerLength = 112

	l1EntrySize = 8
	l2Entries   = clusterSize / 8
	// bytesPerL1Entry is the guest range one L2 table maps (512 MiB).
	bytesPerL1Entry = clusterSize * l2Entries

	// qemu refuses to open images whose L1 table exceeds 32 MiB
	// (QCOW_MAX_L1_SIZE), which caps the virtual size at 2 PiB for 64 KiB
	// clusters; `qemu-img create` rejects anything larger too.
	maxL1Entries = (32 << 20) / l1EntrySize

	// MaxVirtualSize is the largest virtual size qemu can open with 64 KiB
	// clusters (2 PiB).
	MaxVirtualSize = maxL1Entries * bytesPerL1Entry

	// MaxBackingPathLen is the spec's (and qemu's) limit on the backing file
	// name.
	MaxBackingPathLen = 1023

	extEnd           = 0x00000000
	extBackingFormat = 0xE2792ACA
	// The other header extensions qemu knows, and writes anew when it rewrites the
	// header; any other it keeps as it is.
	extFeatureTable = 0x6803F857
	extCryptoHeader = 0x0537BE77
	extBitmaps      = 0x23852875
	extDataFile     = 0x44415441

	// incompatExternalData is the incompatible feature bit of an image whose
	// data lives in an external file.
	incompatExternalData = 1 << 2

	// Fixed cluster positions of an empty overlay.
	refcountTableOffset = 1 * clusterSize
	refcountBlockOffset = 2 * clusterSize
	l1TableOffset       = 3 * clusterSize

	// Header lengths: v2 (fixed) and v3 (mandatory fields only).
	v2HeaderLength = 72
	v3HeaderLength = 104

	// The incompatible features qemu knows (dirty, corrupt, external data file,
	// compression type, extended L2 entries): it refuses to open an image with any
	// other.
	knownIncompatibleFeatures   = 1<<5 - 1
	incompatibleCompressionType = 1 << 3
	incompatibleExtendedL2      = 1 << 4

	// qemu's bounds on the refcount and snapshot tables (QCOW_MAX_REFTABLE_SIZE,
	// QCOW_MAX_SNAPSHOTS, sizeof(QCowSnapshotHeader)).
	maxRefcountTableBytes = 8 << 20
	maxSnapshots          = 65536
	snapshotHeaderSize    = 40
)

// ErrNotQCOW2 is returned by ReadInfo for files that lack the qcow2 magic.
var ErrNotQCOW2 = errors.New("qcow2: not a qcow2 image")

// Info is what vws reads back from a qcow2 header.
type Info struct {
	Version       uint32
	VirtualSize   int64
	ClusterBits   uint32
	BackingFile   string // as stored in the image; "" if none
	BackingFormat string // from the backing format extension; "" if absent
	// ExternalData: the guest's data lives in another file the header names
	// (incompatible feature bit 2), which qemu opens with the image.
	ExternalData bool
}

// IsQCOW2 reports whether header starts with the qcow2 magic "QFI\xfb".
func IsQCOW2(header []byte) bool {
	return len(header) >= len(magic) && string(header[:len(magic)]) == magic
}

// CreateOverlay writes a new, empty qcow2 (version 3) image at path whose
// backing file is backingPath (stored as given; it must be absolute and
// clean) in format backingFormat ("raw" or "qcow2"), with the given virtual
// size in bytes. It fails if path exists (the error matches fs.ErrExist),
// writes the whole file, fsyncs it, and removes the partial file on any error.
// The backing file is neither opened nor checked: that is the caller's job,
// and skipping it keeps creation O(1).
func CreateOverlay(path, backingPath, backingFormat string, virtualSize int64) error {
	return createOverlay(path, backingPath, backingFormat, virtualSize, (*os.File).Sync)
}

// CreateEmpty writes a new, empty qcow2 (version 3) image at path that stands on no
// backing file: a blank disk of virtualSize bytes (a multiple of 512) reading as
// zeros, sparse on disk. Like CreateOverlay it never clobbers a file, fsyncs, and
// removes the partial file on any error.
func CreateEmpty(path string, virtualSize int64) error {
	if path == "" {
		return errors.New("qcow2: empty image path")
	}
	l, err := newLayout("", "", virtualSize)
	if err != nil {
		return err
	}
	return writeLayout(path, l, (*os.File).Sync)
}

// EmptySize is the length of the file CreateOverlay or CreateEmpty writes for
// virtualSize (its metadata clusters; the file is sparse, so fewer bytes are
// allocated), or an error for a size they refuse.
func EmptySize(virtualSize int64) (int64, error) {
	l, err := newLayout("", "", virtualSize)
	if err != nil {
		return 0, err
	}
	// A backing file name fits in cluster 0 either way: the same length.
	return l.fileSize, nil
}

// createOverlay takes the sync step as a parameter so tests can make it fail
// and observe the cleanup.
func createOverlay(path, backingPath, backingFormat string, virtualSize int64, sync func(*os.File) error) (err error) {
	if path == "" {
		return errors.New("qcow2: empty overlay path")
	}
	if path == backingPath {
		return fmt.Errorf("qcow2: overlay %q cannot be its own backing file", path)
	}
	if err := checkBackingPath(backingPath); err != nil {
		return err
	}
	l, err := newLayout(backingPath, backingFormat, virtualSize)
	if err != nil {
		return err
	}
	return writeLayout(path, l, sync)
}

// writeLayout writes l as a new file at path.
func writeLayout(path string, l *layout, sync func(*os.File) error) (err error) {
	// 0644 like qemu-img (subject to umask). O_EXCL: never clobber an image.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("qcow2: create overlay: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the first error is what matters
			os.Remove(path)
		}
	}()

	for _, w := range l.writes() {
		if _, err = f.WriteAt(w.data, w.off); err != nil {
			return fmt.Errorf("qcow2: write overlay: %w", err)
		}
	}
	// The L1 table is all zeros, so extending the file (sparsely) writes it;
	// the refcount/header clusters' unused tails are zero holes as well.
	if err = f.Truncate(l.fileSize); err != nil {
		return fmt.Errorf("qcow2: size overlay: %w", err)
	}
	if err = sync(f); err != nil {
		return fmt.Errorf("qcow2: sync overlay: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("qcow2: close overlay: %w", err)
	}
	return nil
}

// layout is the on-disk content of an empty overlay:
//
//	cluster 0        header (112 bytes), backing format extension,
//	                 end-of-extensions marker, backing file name
//	cluster 1        refcount table, one entry -> cluster 2
//	cluster 2        refcount block, refcount 1 for clusters 0..2+l1Clusters
//	cluster 3..      L1 table, l1Size zero entries (l1Clusters clusters)
//
// Only the non-zero prefix of each metadata cluster is written; the rest is
// zero by virtue of being a hole.
type layout struct {
	header     []byte // written at 0
	refTable   []byte // written at refcountTableOffset
	refBlock   []byte // written at refcountBlockOffset
	l1Size     uint32
	l1Clusters int64
	fileSize   int64
}

type write struct {
	off  int64
	data []byte
}

func (l *layout) writes() []write {
	return []write{
		{0, l.header},
		{refcountTableOffset, l.refTable},
		{refcountBlockOffset, l.refBlock},
	}
}

// newLayout lays out an empty image over backingPath, or standing alone when
// backingPath is "" (no backing file, no backing format extension). The caller has
// checked a non-empty backingPath (checkBackingPath).
func newLayout(backingPath, backingFormat string, virtualSize int64) (*layout, error) {
	if backingPath != "" && backingFormat != "raw" && backingFormat != "qcow2" {
		return nil, fmt.Errorf("qcow2: backing format %q not supported (want raw or qcow2)", backingFormat)
	}
	switch {
	case virtualSize <= 0:
		return nil, fmt.Errorf("qcow2: virtual size %d must be positive", virtualSize)
	case virtualSize%512 != 0:
		return nil, fmt.Errorf("qcow2: virtual size %d is not a multiple of 512", virtualSize)
	case virtualSize > MaxVirtualSize:
		return nil, fmt.Errorf("qcow2: virtual size %d exceeds the maximum %d (2 PiB)", virtualSize, int64(MaxVirtualSize))
	}

	l1Size := (virtualSize + bytesPerL1Entry - 1) / bytesPerL1Entry
	l1Clusters := (l1Size*l1EntrySize + clusterSize - 1) / clusterSize
	used := 3 + l1Clusters // header, refcount table, refcount block, L1
	// With the size cap, used <= 3+512, far below the 32768 clusters one
	// refcount block covers; this guards the invariant if constants change.
	if used > refcountBlockEntries {
		return nil, fmt.Errorf("qcow2: internal error: %d metadata clusters exceed one refcount block", used)
	}

	// Cluster 0: header, extensions, then the backing file name right after
	// the end-of-extensions marker (where qemu puts it, and where qemu looks
	// for free space when it rewrites extensions).
	var h bytes.Buffer
	be := binary.BigEndian
	put32 := func(v uint32) { h.Write(be.AppendUint32(nil, v)) }
	put64 := func(v uint64) { h.Write(be.AppendUint64(nil, v)) }
	fmtExtLen := 0
	if backingPath != "" {
		fmtExtLen = 8 + align8(len(backingFormat))
	}
	nameOffset := headerLength + fmtExtLen + 8
	backingOffset := uint64(nameOffset)
	if backingPath == "" {
		backingOffset = 0 // the spec's "no backing file"
	}

	h.WriteString(magic)
	put32(3)                                    // version
	put64(backingOffset)                        // backing_file_offset
	put32(uint32(len(backingPath)))             // backing_file_size
	put32(clusterBits)                          // cluster_bits
	put64(uint64(virtualSize))                  // size
	put32(0)                                    // crypt_method: none
	put32(uint32(l1Size))                       // l1_size
	put64(l1TableOffset)                        // l1_table_offset
	put64(refcountTableOffset)                  // refcount_table_offset
	put32(1)                                    // refcount_table_clusters
	put32(0)                                    // nb_snapshots
	put64(0)                                    // snapshots_offset
	put64(0)                                    // incompatible_features (clean)
	put64(0)                                    // compatible_features (no lazy refcounts)
	put64(0)                                    // autoclear_features
	put32(refcountOrder)                        // refcount_order
	put32(headerLength)                         // header_length
	h.Write(make([]byte, headerLength-h.Len())) // compression_type 0 (zlib) + padding
	if backingPath != "" {
		put32(extBackingFormat)
		put32(uint32(len(backingFormat)))
		h.WriteString(backingFormat)
		h.Write(make([]byte, align8(len(backingFormat))-len(backingFormat)))
	}
	put32(extEnd)
	put32(0)
	h.WriteString(backingPath)
	if h.Len() != nameOffset+len(backingPath) || h.Len() > clusterSize {
		return nil, fmt.Errorf("qcow2: internal error: header length %d", h.Len())
	}

	refTable := be.AppendUint64(nil, refcountBlockOffset)
	refBlock := make([]byte, 2*used)
	for i := range used {
		be.PutUint16(refBlock[2*i:], 1)
	}
	return &layout{
		header:     h.Bytes(),
		refTable:   refTable,
		refBlock:   refBlock,
		l1Size:     uint32(l1Size),
		l1Clusters: l1Clusters,
		fileSize:   used * clusterSize,
	}, nil
}

// checkBackingPath accepts only absolute, clean paths without control
// characters. Relative names would be resolved by qemu against the overlay's
// directory, "json:" or "proto:" names would be parsed as QEMU options, and
// newlines or NULs would break tools and logs that print the chain.
func checkBackingPath(p string) error {
	switch {
	case p == "":
		return errors.New("qcow2: empty backing path")
	case len(p) > MaxBackingPathLen:
		return fmt.Errorf("qcow2: backing path is %d bytes, limit is %d", len(p), MaxBackingPathLen)
	case strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return fmt.Errorf("qcow2: backing path %q contains control characters", p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("qcow2: backing path %q is not absolute", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("qcow2: backing path %q is not clean (want %q)", p, filepath.Clean(p))
	}
	return nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// header is the parsed qcow2 header; ReadInfo exposes the vws-relevant part,
// tests inspect the rest.
type header struct {
	version               uint32
	backingFileOffset     uint64
	backingFileSize       uint32
	clusterBits           uint32
	size                  uint64
	cryptMethod           uint32
	l1Size                uint32
	l1TableOffset         uint64
	refcountTableOffset   uint64
	refcountTableClusters uint32
	nbSnapshots           uint32
	snapshotsOffset       uint64
	incompatibleFeatures  uint64
	compatibleFeatures    uint64
	autoclearFeatures     uint64
	refcountOrder         uint32
	headerLength          uint32
	compressionType       uint8
	backingFormat         string
	backingFile           string
	unknownExtBytes       uint64 // header extensions qemu does not know, with their padding
}

// ReadInfo reads the header, header extensions and backing file name of the
// qcow2 image at path. Files without the qcow2 magic yield an error matching
// ErrNotQCOW2.
func ReadInfo(path string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("qcow2: %w", err)
	}
	defer f.Close()

	h, err := readHeader(f, path)
	if err != nil {
		return Info{}, err
	}
	return Info{
		Version:       h.version,
		VirtualSize:   int64(h.size),
		ClusterBits:   h.clusterBits,
		BackingFile:   h.backingFile,
		BackingFormat: h.backingFormat,
		ExternalData:  h.incompatibleFeatures&incompatExternalData != 0,
	}, nil
}

// BackingRoom is how many bytes of cluster 0 of the qcow2 image at path are left for
// a backing file name and its format extension when qemu rewrites the header (as
// qemu-img rebase does), at most: qemu writes the header as long as it is, keeps the
// extensions it does not know, and ends them with an 8-byte marker, then fails ("No
// space left in the file header") when the name does not fit after them.
func BackingRoom(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("qcow2: %w", err)
	}
	defer f.Close()
	h, err := readHeader(f, path)
	if err != nil {
		return 0, err
	}
	return int64(1)<<h.clusterBits - int64(uint64(h.headerLength)+h.unknownExtBytes+8), nil
}

// readHeader reads and parses cluster 0 of the qcow2 image f (at path).
func readHeader(f *os.File, path string) (header, error) {
	// Everything lives in cluster 0. Read 4 KiB, which covers the header of any
	// image; if the cluster is larger and the file goes on, re-read the whole
	// cluster so extensions and the backing name are there.
	buf, err := readPrefix(f, 4096)
	if err != nil {
		return header{}, fmt.Errorf("qcow2: read %s: %w", path, err)
	}
	if !IsQCOW2(buf) {
		return header{}, fmt.Errorf("%w: %s", ErrNotQCOW2, path)
	}
	if len(buf) == 4096 {
		if cb := binary.BigEndian.Uint32(buf[20:]); cb > 12 && cb <= 21 {
			if buf, err = readPrefix(f, 1<<cb); err != nil {
				return header{}, fmt.Errorf("qcow2: read %s: %w", path, err)
			}
		}
	}
	h, err := parseHeader(buf)
	if err != nil {
		return header{}, fmt.Errorf("qcow2: %s: %w", path, err)
	}
	return h, nil
}

// readPrefix returns the first n bytes of f, or fewer if f is shorter.
func readPrefix(f *os.File, n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:m], nil
}

// CheckHeader applies qemu's limits on open to the fixed header fields at the start of
// head: version, cluster size, virtual size (which the L1 table must be able to map),
// header length, refcount width, incompatible features, and the places and sizes of
// the L1, refcount and snapshot tables. It needs the first 72 bytes (104 for version
// 3) and looks no further: header extensions and the backing file name are not read.
func CheckHeader(head []byte) error {
	_, err := parseFixed(head)
	return err
}

// ErrTruncated is returned for a header cut short.
var ErrTruncated = errors.New("truncated header")

// maxVirtualSize is the largest virtual size an L1 table qemu opens can map with
// clusters of 1<<clusterBits bytes.
func maxVirtualSize(clusterBits uint32) uint64 {
	cs := uint64(1) << clusterBits
	return maxL1Entries * cs * (cs / l1EntrySize)
}

// parseFixed parses and checks the fixed header fields.
func parseFixed(b []byte) (header, error) {
	var h header
	if !IsQCOW2(b) {
		return h, ErrNotQCOW2
	}
	if len(b) < v2HeaderLength {
		return h, ErrTruncated
	}
	be := binary.BigEndian
	h.version = be.Uint32(b[4:])
	h.backingFileOffset = be.Uint64(b[8:])
	h.backingFileSize = be.Uint32(b[16:])
	h.clusterBits = be.Uint32(b[20:])
	h.size = be.Uint64(b[24:])
	h.cryptMethod = be.Uint32(b[32:])
	h.l1Size = be.Uint32(b[36:])
	h.l1TableOffset = be.Uint64(b[40:])
	h.refcountTableOffset = be.Uint64(b[48:])
	h.refcountTableClusters = be.Uint32(b[56:])
	h.nbSnapshots = be.Uint32(b[60:])
	h.snapshotsOffset = be.Uint64(b[64:])

	switch h.version {
	case 2:
		h.refcountOrder = 4
		h.headerLength = v2HeaderLength
	case 3:
		if len(b) < v3HeaderLength {
			return h, ErrTruncated
		}
		h.incompatibleFeatures = be.Uint64(b[72:])
		h.compatibleFeatures = be.Uint64(b[80:])
		h.autoclearFeatures = be.Uint64(b[88:])
		h.refcountOrder = be.Uint32(b[96:])
		h.headerLength = be.Uint32(b[100:])
	default:
		return h, fmt.Errorf("unsupported qcow2 version %d", h.version)
	}
	if h.clusterBits < 9 || h.clusterBits > 21 {
		return h, fmt.Errorf("invalid cluster_bits %d (qemu opens 9 to 21)", h.clusterBits)
	}
	cs := uint64(1) << h.clusterBits
	if max := maxVirtualSize(h.clusterBits); h.size > max {
		return h, fmt.Errorf("virtual size %d is more than %d-byte clusters can map (%d)", h.size, cs, max)
	}
	if h.version == 3 {
		if h.headerLength < v3HeaderLength || h.headerLength%8 != 0 || uint64(h.headerLength) > cs {
			return h, fmt.Errorf("invalid header_length %d", h.headerLength)
		}
		if h.refcountOrder > 6 {
			return h, fmt.Errorf("invalid refcount_order %d", h.refcountOrder)
		}
		if unknown := h.incompatibleFeatures &^ knownIncompatibleFeatures; unknown != 0 {
			return h, fmt.Errorf("unknown incompatible features %#x", unknown)
		}
		// compression_type (byte 104, zlib when the header ends before it): qemu knows
		// zlib (0) and zstd (1), and opens no image whose feature bit 3 disagrees with it.
		if h.headerLength == v3HeaderLength || len(b) > v3HeaderLength {
			if h.headerLength > v3HeaderLength {
				h.compressionType = b[v3HeaderLength]
			}
			bit := h.incompatibleFeatures&incompatibleCompressionType != 0
			switch {
			case h.compressionType > 1:
				return h, fmt.Errorf("unknown compression type %d", h.compressionType)
			case bit != (h.compressionType != 0):
				return h, fmt.Errorf("compression type %d does not agree with the compression type feature bit (set: %v)", h.compressionType, bit)
			}
		}
	}
	// The tables qemu locates from the header on open: it refuses the image when one
	// is out of bounds or off a cluster boundary, or the L1 table cannot map the size.
	l2Entries := cs / l1EntrySize
	if h.incompatibleFeatures&incompatibleExtendedL2 != 0 {
		l2Entries /= 2 // 16-byte L2 entries
		// They cut a cluster into 32 subclusters, which qemu wants of 512 bytes at least.
		if cs/32 < 512 {
			return h, fmt.Errorf("extended L2 entries with %d-byte clusters (qemu opens them with 16 KiB clusters or larger)", cs)
		}
	}
	if h.l1Size > maxL1Entries {
		return h, fmt.Errorf("L1 table of %d entries is larger than qemu's limit of %d", h.l1Size, maxL1Entries)
	}
	if need := (h.size + cs*l2Entries - 1) / (cs * l2Entries); uint64(h.l1Size) < need {
		return h, fmt.Errorf("L1 table of %d entries cannot map the virtual size %d (%d needed)", h.l1Size, h.size, need)
	}
	if h.l1Size > 0 && !tableFits(h.l1TableOffset, uint64(h.l1Size)*l1EntrySize, cs) {
		return h, fmt.Errorf("invalid l1_table_offset %d", h.l1TableOffset)
	}
	if h.refcountTableClusters == 0 {
		return h, errors.New("no refcount table (refcount_table_clusters 0)")
	}
	if uint64(h.refcountTableClusters)*cs > maxRefcountTableBytes {
		return h, fmt.Errorf("refcount table of %d clusters is larger than qemu's limit of %d bytes", h.refcountTableClusters, maxRefcountTableBytes)
	}
	if !tableFits(h.refcountTableOffset, uint64(h.refcountTableClusters)*cs, cs) {
		return h, fmt.Errorf("invalid refcount_table_offset %d", h.refcountTableOffset)
	}
	if h.nbSnapshots > maxSnapshots {
		return h, fmt.Errorf("%d snapshots, more than qemu's limit of %d", h.nbSnapshots, maxSnapshots)
	}
	if !tableFits(h.snapshotsOffset, uint64(h.nbSnapshots)*snapshotHeaderSize, cs) {
		return h, fmt.Errorf("invalid snapshots_offset %d", h.snapshotsOffset)
	}
	return h, nil
}

// tableFits says whether a table of n bytes at off passes qemu's check on open: it
// starts on a cluster boundary and ends within a signed 64-bit file offset.
func tableFits(off, n, clusterSize uint64) bool {
	return off%clusterSize == 0 && off <= math.MaxInt64-n
}

// parseHeader parses cluster 0 of an image (or as much of it as the file
// has), applying the same sanity limits qemu applies on open.
func parseHeader(b []byte) (header, error) {
	h, err := parseFixed(b)
	if err != nil {
		return h, err
	}
	be := binary.BigEndian
	cs := uint64(1) << h.clusterBits
	if h.version == 3 {
		if uint64(len(b)) < uint64(h.headerLength) {
			return h, ErrTruncated
		}
	}

	// Extensions run from the end of the header to the backing file name (or
	// the end of cluster 0), as in qemu.
	extEndOff := cs
	if h.backingFileOffset != 0 && h.backingFileOffset < extEndOff {
		extEndOff = h.backingFileOffset
	}
	off := uint64(h.headerLength)
	for {
		if off+8 > extEndOff {
			// qemu tolerates a missing end marker when space runs out.
			break
		}
		if off+8 > uint64(len(b)) {
			return h, ErrTruncated
		}
		typ, n := be.Uint32(b[off:]), uint64(be.Uint32(b[off+4:]))
		if typ == extEnd {
			break
		}
		data := off + 8
		if n > extEndOff-data {
			return h, fmt.Errorf("header extension %#x at %d overruns the extension area", typ, off)
		}
		if data+n > uint64(len(b)) {
			return h, ErrTruncated
		}
		switch typ {
		case extBackingFormat:
			if n >= 16 { // qemu's limit
				return h, fmt.Errorf("backing format extension too long (%d bytes)", n)
			}
			h.backingFormat = string(b[data : data+n])
		case extFeatureTable, extCryptoHeader, extBitmaps, extDataFile:
		default:
			h.unknownExtBytes += 8 + (n+7)&^7
		}
		off = data + (n+7)&^7
	}

	if h.backingFileOffset != 0 {
		if h.backingFileSize > MaxBackingPathLen ||
			h.backingFileOffset > cs || uint64(h.backingFileSize) > cs-h.backingFileOffset {
			return h, fmt.Errorf("invalid backing file name (offset %d, size %d)", h.backingFileOffset, h.backingFileSize)
		}
		end := h.backingFileOffset + uint64(h.backingFileSize)
		if end > uint64(len(b)) {
			return h, ErrTruncated
		}
		h.backingFile = string(b[h.backingFileOffset:end])
	}
	return h, nil
}

// Unwritten reports whether the qcow2 image at path holds no data of its own: no
// L2 table is allocated (every read falls through to its backing file) and it has no
// snapshots. Conservative: an image whose tables exist but map nothing counts as
// written.
func Unwritten(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("qcow2: %w", err)
	}
	defer f.Close()
	h, err := readHeader(f, path)
	if err != nil {
		return false, err
	}
	if h.nbSnapshots != 0 {
		return false, nil
	}
	const maxL1 = 32 << 20 / 8 // qemu's own bound on the L1 table
	if h.l1Size > maxL1 {
		return false, fmt.Errorf("qcow2: %s: L1 table of %d entries", path, h.l1Size)
	}
	l1 := make([]byte, 64<<10)
	for left, off := int64(h.l1Size)*8, int64(h.l1TableOffset); left > 0; {
		n := min(left, int64(len(l1)))
		if _, err := f.ReadAt(l1[:n], off); err != nil {
			return false, fmt.Errorf("qcow2: read the L1 table of %s: %w", path, err)
		}
		for i := int64(0); i < n; i += 8 {
			if binary.BigEndian.Uint64(l1[i:]) != 0 {
				return false, nil
			}
		}
		left, off = left-n, off+n
	}
	return true, nil
}
