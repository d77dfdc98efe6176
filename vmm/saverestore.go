package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// Save writes the domain's RAM and device state to path (virDomainSave). The domain
// ends shut off and stays defined.
func (l *Libvirt) Save(ctx context.Context, name, path string) error {
	if err := checkPath("save image", path, false); err != nil {
		return err
	}
	return l.withDomain(ctx, "save", name, true, func(d *libvirt.Domain) error {
		return d.Save(path)
	})
}

// Restore resumes the image Save wrote at path, running or paused. The image embeds
// the domain XML of the host it was saved on; its host-side paths (disk sources by
// target, kernel, initrd, serial console log) are replaced with those of s, whose name
// and UUID must equal the saved ones. A persistent definition of the domain may or may
// not exist.
func (l *Libvirt) Restore(ctx context.Context, path string, s Spec, paused bool) error {
	if err := checkPath("save image", path, false); err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return err
	}
	var saved string
	err := l.read(ctx, func(c *libvirt.Connect) (err error) {
		saved, err = c.DomainSaveImageGetXMLDesc(path, libvirt.DOMAIN_SAVE_IMAGE_XML_SECURE)
		return err
	})
	if err != nil {
		return wrap("restore: read the domain XML of", path, err)
	}
	xml, changed, err := rewriteSaved(saved, s)
	if err != nil {
		return err
	}
	if !changed {
		xml = "" // same host, same paths: let libvirt use the image's own XML
	}
	flags := libvirt.DOMAIN_SAVE_RUNNING
	if paused {
		flags = libvirt.DOMAIN_SAVE_PAUSED
	}
	fixState := false
	err = l.write(ctx, "restore", s.Name, func(c *libvirt.Connect) error {
		err := c.DomainRestoreFlags(path, xml, flags)
		if unsupportedFlags(err) {
			// The driver (libxl, test) lacks SAVE_RUNNING or SAVE_PAUSED: restore in the
			// saved state, then pause or resume below.
			fixState = true
			err = c.DomainRestoreFlags(path, xml, 0)
		}
		return err
	})
	if err != nil || !fixState {
		return err
	}
	st, err := l.State(ctx, s.Name)
	switch {
	case err != nil:
		return err
	case paused && st == StateRunning:
		return l.Pause(ctx, s.Name)
	case !paused && st == StatePaused:
		return l.Resume(ctx, s.Name)
	}
	return nil
}

// qemuSavePartial is the header libvirt's QEMU driver writes at the start of a save
// image and replaces with "LibvirtQemudSave" once the image is complete.
const qemuSavePartial = "LibvirtQemudPart"

// SaveImageUnfinished reports whether the file at path is a save image libvirt's QEMU
// driver began and never finished (the save was cut off: QEMU died, or libvirtd
// stopped it). Such a file restores nothing. Other drivers' images are not judged.
func SaveImageUnfinished(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(qemuSavePartial))
	if _, err := io.ReadFull(f, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return true, nil // not even a header
		}
		return false, err
	}
	return string(head) == qemuSavePartial, nil
}

// SavedMemoryMiB is the memory of the guest a save image holds: a restore gives it
// exactly that much, whatever a host would grant the workspace afresh.
func (l *Libvirt) SavedMemoryMiB(ctx context.Context, path string) (int64, error) {
	var saved string
	err := l.read(ctx, func(c *libvirt.Connect) (err error) {
		saved, err = c.DomainSaveImageGetXMLDesc(path, 0)
		return err
	})
	if err != nil {
		return 0, wrap("read the domain XML of", path, err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(saved); err != nil {
		return 0, fmt.Errorf("parse domain XML of the save image %s: %w", path, err)
	}
	mib, err := memoryMiB(dom.Memory)
	if err != nil {
		return 0, fmt.Errorf("the save image %s: its guest's memory: %w", path, err)
	}
	return mib, nil
}
