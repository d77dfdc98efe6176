package qcow2

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestUnwrittenReadsTheWholeHeaderCluster: header extensions qemu does not know are
// kept by it (qemu-img rebase writes them back), so an overlay's backing file name may
// lie past the first 4 KiB of its 64 KiB header cluster. Unwritten reads such a header
// as ReadInfo does, instead of failing on it as cut short.
func TestUnwrittenReadsTheWholeHeaderCluster(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "ov.qcow2")
	if err := CreateOverlay(ov, base, "raw", 4<<20); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ov)
	if err != nil {
		t.Fatal(err)
	}
	// Insert an unknown extension of 5000 bytes before the others; the name moves.
	be := binary.BigEndian
	nameOff, nameLen := be.Uint64(b[8:]), be.Uint32(b[16:])
	name := append([]byte(nil), b[nameOff:nameOff+uint64(nameLen)]...)
	var c bytes.Buffer
	c.Write(b[:headerLength])
	c.Write(be.AppendUint32(nil, 0x12345678))
	c.Write(be.AppendUint32(nil, 5000))
	c.Write(bytes.Repeat([]byte{'x'}, 5000))
	c.Write(b[headerLength:nameOff]) // backing format extension, end marker
	be.PutUint64(c.Bytes()[8:], uint64(c.Len()))
	c.Write(name)
	copy(b[:clusterSize], make([]byte, clusterSize))
	copy(b, c.Bytes())
	if err := os.WriteFile(ov, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if info, err := ReadInfo(ov); err != nil || info.BackingFile != base {
		t.Fatalf("ReadInfo: %+v, %v", info, err)
	}
	if empty, err := Unwritten(ov); err != nil || !empty {
		t.Fatalf("an empty overlay whose backing name lies past 4 KiB: unwritten %v, %v", empty, err)
	}
}
