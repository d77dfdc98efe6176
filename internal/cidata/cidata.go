// Package cidata builds the configuration CD-ROM that hands a workspace's startup
// program (describe.Startup, the capability part of its description) to the guest, in
// cloud-init's NoCloud layout: an ISO9660 volume labelled "cidata" with the files
// "meta-data" (instance-id, local-hostname) and "user-data" (a #!/bin/sh script, see
// UserData) at its root. Real cloud-init runs such a user-data once at first boot; the
// vws test guest mounts the CD and runs "/bin/sh /cidata/user-data".
//
// # The ISO writer and the file names
//
// The image is a plain ISO9660 primary volume, laid out as
// github.com/kdomanski/iso9660 (v0.4.0) lays one out and encoded with its record
// types (writeImage): no Rock Ridge, no Joliet, no path tables. Its names are in the
// library's "mangled" d1 form, which keeps lower case and '-', so the root directory
// records are "meta-data;1" and "user-data;1". Linux's isofs (without Rock Ridge or
// Joliet, default map=normal) shows them as "meta-data" and "user-data" — lower-cased,
// ";1" dropped — which are the names cloud-init opens. This was checked with isoinfo
// (raw records), xorriso (-find / -exec lsdl shows '/meta-data' and '/user-data') and blkid
// (LABEL="cidata") in the tests, and by hand with a Debian 6.1 kernel under QEMU: a
// busybox initramfs loop-mounted the image (isofs: nojoliet, map=n), ls showed meta-data
// and user-data, and "/bin/sh /cidata/user-data" ran the program as another user
// through busybox su and powered the guest off. Strict ISO9660 readers would want upper
// case and no '-', but NoCloud is read by Linux and cloud-init, and cloud-init's own
// cloud-localds gives the same names (through Rock Ridge and Joliet). Only these two
// fixed names are written (the tests read them back). The volume identifier is
// "cidata" as given. So no Rock Ridge/Joliet writer (nor an external mkisofs/xorriso)
// is needed.
//
// The directory records' timestamps are left zero (readers show 1900-ish or 2049
// dates); nothing reads them. Files in a plain ISO9660 volume carry no
// permissions: the guest runs the script with "/bin/sh user-data", not by executing it.
package cidata

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vws-grid/vws/internal/describe"
)

// VolumeID is the label NoCloud looks for.
const VolumeID = "cidata"

// The names of the files at the volume's root.
const (
	MetaDataName = "meta-data"
	UserDataName = "user-data"
)

// Config is what goes on the CD.
type Config struct {
	InstanceID string            // required; [A-Za-z0-9._-]{1,128}
	Hostname   string            // optional; RFC 1123 host name
	Startup    *describe.Startup // nil: user-data is a script that only says there is no startup program
}

// MetaData renders meta-data: instance-id and, if set, local-hostname, as YAML with
// double-quoted values (so that an instance id such as "1.0", "null" or "true" stays a
// string). The values are validated first; their character sets need no escapes.
func MetaData(c Config) ([]byte, error) {
	if err := validateConfig(c); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "instance-id: \"%s\"\n", c.InstanceID)
	if c.Hostname != "" {
		fmt.Fprintf(&b, "local-hostname: \"%s\"\n", c.Hostname)
	}
	return b.Bytes(), nil
}

// minImageSize is the least size of the written image.
const minImageSize = 1 << 20

// Write builds the ISO9660 image (volume id "cidata") holding meta-data and user-data
// and puts it at path atomically: it writes a temporary file in path's directory,
// fsyncs it, renames it over path and then fsyncs the directory (best effort: the
// rename has already happened). On any error nothing is
// left at path (an existing file there is untouched) and the temporary file is removed.
// The image is created with mode 0600: file contents may be secrets.
func Write(path string, c Config) (err error) {
	meta, err := MetaData(c)
	if err != nil {
		return err
	}
	user, err := UserData(c.Startup)
	if err != nil {
		return err
	}

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("cidata: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = writeImage(tmp, VolumeID, []isoFile{{MetaDataName + ";1", meta}, {UserDataName + ";1", user}}); err != nil {
		return fmt.Errorf("cidata: writing the image: %w", err)
	}
	// A few-KiB disc is shorter than the window label probers read at once (busybox
	// findfs reads 68 KiB from the start and gives up on a short read): pad with
	// zeros, sparsely, past the end of the file system.
	if fi, serr := tmp.Stat(); serr != nil {
		return fmt.Errorf("cidata: %w", serr)
	} else if fi.Size() < minImageSize {
		if err = tmp.Truncate(minImageSize); err != nil {
			return fmt.Errorf("cidata: %w", err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cidata: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cidata: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cidata: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
