package cidata

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/kdomanski/iso9660"
)

const sectorSize = 2048

// isoFile is one file at the root of the image.
type isoFile struct {
	name string // its ISO9660 identifier, e.g. "meta-data;1"
	data []byte
}

// writeImage writes a plain ISO9660 volume holding files at its root, in the layout
// iso9660.ImageWriter gives one: 16 empty system sectors, the primary volume
// descriptor, the terminator, the root directory, then each file's sectors. It writes
// from memory: the library's writer first copies the files to a staging directory
// under the system temporary directory, where they (the startup files, which may
// hold secrets) stay for good when the manager is killed meanwhile.
func writeImage(w io.Writer, volumeID string, files []isoFile) error {
	const rootSector = 18 // after the system area and the two volume descriptors
	root := &iso9660.DirectoryEntry{
		ExtentLocation:       rootSector,
		ExtentLength:         sectorSize,
		FileFlags:            2, // a directory
		VolumeSequenceNumber: 1,
		Identifier:           "\x00",
	}
	self, parent := root.Clone(), root.Clone()
	parent.Identifier = "\x01" // the root is its own parent
	records := []*iso9660.DirectoryEntry{&self, &parent}
	next := uint32(rootSector + 1)
	for _, f := range files {
		records = append(records, &iso9660.DirectoryEntry{
			ExtentLocation:       int32(next),
			ExtentLength:         uint32(len(f.data)),
			VolumeSequenceNumber: 1,
			Identifier:           f.name,
		})
		next += uint32((len(f.data) + sectorSize - 1) / sectorSize)
	}
	var dir bytes.Buffer
	for _, r := range records {
		b, err := r.MarshalBinary()
		if err != nil {
			return err
		}
		dir.Write(b)
	}
	if dir.Len() > sectorSize {
		return fmt.Errorf("the root directory needs more than one sector (%d bytes)", dir.Len())
	}

	now := iso9660.VolumeDescriptorTimestampFromTime(time.Now())
	pvd, err := iso9660.PrimaryVolumeDescriptorBody{
		SystemIdentifier:              runtime.GOOS,
		VolumeIdentifier:              volumeID,
		VolumeSpaceSize:               int32(next),
		VolumeSetSize:                 1,
		VolumeSequenceNumber:          1,
		LogicalBlockSize:              sectorSize,
		RootDirectoryEntry:            root,
		ApplicationIdentifier:         "github.com/vws-grid/vws",
		VolumeCreationDateAndTime:     now,
		VolumeModificationDateAndTime: now,
		VolumeEffectiveDateAndTime:    now,
		FileStructureVersion:          1,
	}.MarshalBinary()
	if err != nil {
		return err
	}
	copy(pvd, "\x01CD001\x01") // the descriptor's header: type primary, version 1
	terminator := make([]byte, sectorSize)
	copy(terminator, "\xffCD001\x01")

	// The files are written straight from their slices: together they may be tens of
	// MiB (MaxFiles of MaxFileSize), not to be copied once more.
	parts := [][]byte{make([]byte, 16*sectorSize), pvd, terminator, dir.Bytes()}
	for _, f := range files {
		parts = append(parts, f.data)
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
		if n := len(p) % sectorSize; n != 0 {
			if _, err := w.Write(make([]byte, sectorSize-n)); err != nil {
				return err
			}
		}
	}
	return nil
}
