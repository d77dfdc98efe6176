package imagepool

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/vws-grid/vws/internal/qcow2"
)

// Image formats the pool stores.
const (
	FormatQCOW2 = "qcow2"
	FormatRaw   = "raw"
)

// headLen is how much of the stream format detection looks at.
const headLen = 512

const (
	qcow2V2HeaderLen      = 72
	qcow2V3HeaderLen      = 104
	qcow2IncompatDataFile = 1 << 2 // external data file: the guest's bytes live in another (host) file
)

// otherFormats are content a raw disk does not start with: images in formats the pool
// does not store, and compressed files. Checked cheaply on the first bytes.
var otherFormats = []struct {
	off   int
	magic string
	what  string
	todo  string
}{
	{0, "\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"},
	{0, "\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz)"},
	{0, "\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd)"},
	{0, "KDMV", "a VMDK image", "convert it: qemu-img convert -O qcow2 IN OUT.qcow2"},
	{0, "vhdxfile", "a VHDX image", "convert it: qemu-img convert -O qcow2 IN OUT.qcow2"},
	{0, "conectix", "a VHD image", "convert it: qemu-img convert -O qcow2 IN OUT.qcow2"},
	{0, "QED\x00", "a QED image", "convert it: qemu-img convert -O qcow2 IN OUT.qcow2"},
	{64, "\x7f\x10\xda\xbe", "a VirtualBox VDI image", "convert it: qemu-img convert -O qcow2 IN OUT.qcow2"},
	{0, "LUKS\xba\xbe", "a LUKS-encrypted volume", "import the decrypted disk instead"},
}

// detectFormat reads the format from the first bytes of an image. size < 0 means the
// size is not known yet (an early look while the stream is still coming in); then only
// the refusals apply. Everything that is not qcow2 and not clearly something else is raw,
// and a raw disk's virtual size is its size.
func detectFormat(head []byte, size int64) (format string, virtualSize int64, err error) {
	if size == 0 {
		return "", 0, badRequest("the image is empty (0 bytes); import a qcow2 or raw disk image")
	}
	if bytes.HasPrefix(head, []byte("QFI\xfb")) {
		return detectQCOW2(head, size)
	}
	for _, f := range otherFormats {
		if len(head) >= f.off+len(f.magic) && string(head[f.off:f.off+len(f.magic)]) == f.magic {
			return "", 0, badRequest("the file is %s, not a qcow2 or raw disk image; %s", f.what, f.todo)
		}
	}
	return FormatRaw, size, nil
}

func detectQCOW2(head []byte, size int64) (string, int64, error) {
	be := binary.BigEndian
	if len(head) < qcow2V2HeaderLen {
		if size < 0 {
			return FormatQCOW2, 0, nil // more is coming
		}
		return "", 0, badRequest("the file starts like a qcow2 image but its header is cut short (%d bytes); import the whole image", size)
	}
	version := be.Uint32(head[4:8])
	if version != 2 && version != 3 {
		return "", 0, badRequest("qcow2 version %d is not supported (2 and 3 are); convert it: qemu-img convert -O qcow2 IN OUT.qcow2", version)
	}
	if be.Uint64(head[8:16]) != 0 {
		return "", 0, badRequest("the qcow2 image has a backing file; a base image must stand alone: flatten it with qemu-img convert -O qcow2 IN OUT.qcow2")
	}
	vsize := be.Uint64(head[24:32])
	if vsize == 0 || vsize > math.MaxInt64 {
		return "", 0, badRequest("the qcow2 header gives a virtual size of %d bytes, which no disk has; check the file", vsize)
	}
	if be.Uint32(head[32:36]) != 0 {
		return "", 0, badRequest("the qcow2 image is encrypted; import an unencrypted image (qemu-img convert -O qcow2 with the key)")
	}
	if version == 3 {
		if len(head) < qcow2V3HeaderLen {
			if size < 0 {
				return FormatQCOW2, 0, nil
			}
			return "", 0, badRequest("the qcow2 v3 header is cut short (%d bytes); import the whole image", size)
		}
		if be.Uint64(head[72:80])&qcow2IncompatDataFile != 0 {
			return "", 0, badRequest("the qcow2 image keeps its data in an external file; convert it into one file: qemu-img convert -O qcow2 IN OUT.qcow2")
		}
	}
	// What qemu would refuse to open is refused now, not at the first deploy.
	if err := qcow2.CheckHeader(head); err != nil {
		return "", 0, badRequest("the qcow2 header is not one qemu opens: %v; check the file, or rewrite it: qemu-img convert -O qcow2 IN OUT.qcow2", err)
	}
	return FormatQCOW2, int64(vsize), nil
}
