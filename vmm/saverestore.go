package vmm

import (
	"context"

	"libvirt.org/go/libvirt"
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
