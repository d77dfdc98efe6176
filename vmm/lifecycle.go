package vmm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/vws-grid/vws/internal/errdefs"
)

// Define validates s and defines (or, same name and UUID, updates) the persistent
// domain. An empty s.Type means l.DomainType().
func (l *Libvirt) Define(ctx context.Context, s Spec) error {
	if s.Type == "" {
		s.Type = l.domType
	}
	xml, err := DomainXML(s)
	if err != nil {
		return err
	}
	return l.write(ctx, "define", s.Name, func(c *libvirt.Connect) error {
		d, err := c.DomainDefineXML(xml)
		if err != nil {
			return err
		}
		return d.Free()
	})
}

// Start boots the defined domain. A managed-save image (virsh managedsave, or
// libvirt-guests suspending guests at a host shutdown) is discarded, not resumed: a
// cold start is asked for, and that RAM may belong to a disk that has since been
// reset (Shutdown Trash); RestoreManagedSave is the way to resume one.
func (l *Libvirt) Start(ctx context.Context, name string) error {
	return l.start(ctx, "start", name, 0)
}

// StartPaused boots the domain with its vCPUs stopped before the first instruction
// (virDomainCreateWithFlags START_PAUSED): nothing of the guest runs until Resume.
func (l *Libvirt) StartPaused(ctx context.Context, name string) error {
	return l.start(ctx, "start paused", name, libvirt.DOMAIN_START_PAUSED)
}

func (l *Libvirt) start(ctx context.Context, op, name string, flags libvirt.DomainCreateFlags) error {
	return l.withDomain(ctx, op, name, true, func(d *libvirt.Domain) error {
		err := d.CreateWithFlags(flags | libvirt.DOMAIN_START_FORCE_BOOT)
		if unsupportedFlags(err) { // drivers without managed save (test, libxl)
			err = d.CreateWithFlags(flags)
		}
		if unsupportedFlags(err) && flags&libvirt.DOMAIN_START_PAUSED != 0 {
			// A driver that cannot start paused (test): start, and pause at once.
			if err = d.Create(); err == nil {
				err = d.Suspend()
			}
		}
		return err
	})
}

// RestoreManagedSave resumes, running or paused, the RAM libvirt saved for the
// domain by a managed save; libvirt deletes the image once the domain runs from it. A
// domain without one is ErrNoManagedSave, not a cold boot.
func (l *Libvirt) RestoreManagedSave(ctx context.Context, name string, paused bool) error {
	return l.withDomain(ctx, "restore the managed save of", name, true, func(d *libvirt.Domain) error {
		has, err := d.HasManagedSaveImage(0)
		if err != nil {
			return err
		}
		if !has {
			// Removed behind vws's back (virsh managedsave-remove): the reconciler
			// records the workspace as it finds it on its next round.
			return errdefs.WithAdvice(fmt.Errorf("restore the managed save of %s: %w (%w)", name, ErrNoManagedSave, errdefs.ErrState),
				"libvirt no longer holds the RAM it saved for this workspace; check its state (vws status) in a few seconds, then Shutdown Trash and Start it afresh")
		}
		if !paused {
			return d.Create()
		}
		err = d.CreateWithFlags(libvirt.DOMAIN_START_PAUSED)
		if unsupportedFlags(err) { // the test driver
			if err = d.Create(); err == nil {
				err = d.Suspend()
			}
		}
		return err
	})
}

// RemoveManagedSave deletes the domain's managed-save image, if it has one.
func (l *Libvirt) RemoveManagedSave(ctx context.Context, name string) error {
	return l.withDomain(ctx, "remove the managed save of", name, true, func(d *libvirt.Domain) error {
		// qemu's driver fails on a missing file: a repeated removal must not.
		if has, err := d.HasManagedSaveImage(0); err != nil || !has {
			return err
		}
		return d.ManagedSaveRemove(0)
	})
}

// Pause stops the domain's vCPUs.
func (l *Libvirt) Pause(ctx context.Context, name string) error {
	return l.withDomain(ctx, "pause", name, true, (*libvirt.Domain).Suspend)
}

// Resume restarts a paused domain's vCPUs.
func (l *Libvirt) Resume(ctx context.Context, name string) error {
	return l.withDomain(ctx, "resume", name, true, (*libvirt.Domain).Resume)
}

// Stop forces the domain off (virDomainDestroy). A domain already off is not an error.
func (l *Libvirt) Stop(ctx context.Context, name string) error {
	_, err := l.destroy(ctx, "stop", name)
	return err
}

// destroy forces the domain off and reports whether it was running.
func (l *Libvirt) destroy(ctx context.Context, op, name string) (bool, error) {
	// Locals, not named results: a call given up on may write them late (guard).
	destroyed := false
	err := l.withDomain(ctx, op, name, true, func(d *libvirt.Domain) error {
		active, err := d.IsActive()
		if err != nil || !active {
			return err
		}
		if err := d.Destroy(); err != nil {
			if libvirtCode(err) == libvirt.ERR_OPERATION_INVALID { // went off meanwhile
				return nil
			}
			return err
		}
		destroyed = true
		return nil
	})
	if err != nil { // not destroyed: a call given up on may still write it (guard)
		return false, err
	}
	return destroyed, nil
}

// pollInterval is how often Shutdown looks whether the guest is off.
const pollInterval = 100 * time.Millisecond

// Shutdown asks the guest to power off (ACPI power button: libvirt's default method
// for a domain with no guest agent), waits up to grace for it to end, then forces it
// off. forced reports whether that was needed. A domain already off returns nil, false.
// When ctx ends during the grace period, Shutdown returns ctx's error without forcing.
func (l *Libvirt) Shutdown(ctx context.Context, name string, grace time.Duration) (forced bool, err error) {
	off := false
	err = l.withDomain(ctx, "shutdown", name, true, func(d *libvirt.Domain) error {
		active, err := d.IsActive()
		if err != nil || !active {
			off = !active
			return err
		}
		return d.Shutdown()
	})
	if err != nil || off {
		return false, err
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		active, err := l.active(ctx, name)
		switch {
		case errors.Is(err, ErrNoDomain): // a transient domain vanishes when it ends
			return false, nil
		case errors.Is(err, errdefs.ErrHypervisor) && !errors.Is(err, ErrOutcomeUnknown):
			// The power-off request reached the guest already: not "nothing changed".
			return false, errdefs.WithAdvice(&hvError{op: "shutdown", name: name, err: err, unknown: true,
				detail: "the guest was asked to power off; then libvirtd could not be asked whether it did"},
				"the guest may still power off: the manager records it once it reaches libvirtd again, so check the workspace's state before repeating the shutdown")
		case err != nil:
			return false, err
		case !active:
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("shutdown %s: waiting for the guest to power off: %w", name, ctx.Err())
		case <-deadline.C:
			destroyed, err := l.destroy(ctx, "shutdown: force off", name)
			if errors.Is(err, ErrNoDomain) {
				return false, nil
			}
			return destroyed, err
		case <-tick.C:
		}
	}
}

func (l *Libvirt) active(ctx context.Context, name string) (bool, error) {
	active := false
	err := l.withDomain(ctx, "state of", name, false, func(d *libvirt.Domain) error {
		a, err := d.IsActive()
		active = a
		return err
	})
	if err != nil {
		return false, err
	}
	return active, nil
}

// State reports the domain's state; ErrNoDomain when libvirt knows no such domain.
func (l *Libvirt) State(ctx context.Context, name string) (State, error) {
	var st State
	err := l.withDomain(ctx, "state of", name, false, func(d *libvirt.Domain) error {
		s, reason, err := d.GetState()
		st = stateFrom(s, reason)
		return err
	})
	if err != nil {
		return StateUnknown, err
	}
	return st, nil
}

// Undefine removes the persistent definition with its managed-save image, snapshot and
// checkpoint metadata and NVRAM. An absent domain is not an error; a running (or
// paused) one is: stop it first.
func (l *Libvirt) Undefine(ctx context.Context, name string) error {
	err := l.withDomain(ctx, "undefine", name, true, func(d *libvirt.Domain) error {
		active, err := d.IsActive()
		if err != nil {
			return err
		}
		if active {
			return fmt.Errorf("undefine %s: the domain is running; stop it first: %w", name, errdefs.ErrState)
		}
		// Drivers that reject some of these flags (libxl, the test driver) have nothing
		// of that kind to remove: fall back to fewer.
		for _, flags := range undefineFlags {
			if err = d.UndefineFlags(flags); !unsupportedFlags(err) {
				break
			}
		}
		return err
	})
	l.forget(name)
	if errors.Is(err, ErrNoDomain) {
		return nil
	}
	return err
}

var undefineFlags = []libvirt.DomainUndefineFlagsValues{
	libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | libvirt.DOMAIN_UNDEFINE_NVRAM,
	libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.DOMAIN_UNDEFINE_NVRAM,
	libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE,
	0,
}

// List returns all domains, active and inactive, whose name starts with prefix.
func (l *Libvirt) List(ctx context.Context, prefix string) ([]Domain, error) {
	var out []Domain
	err := l.read(ctx, func(c *libvirt.Connect) error {
		out = out[:0]
		doms, err := c.ListAllDomains(0)
		if err != nil {
			return err
		}
		defer func() {
			for i := range doms {
				doms[i].Free()
			}
		}()
		for i := range doms {
			name, err := doms[i].GetName()
			if err != nil {
				return err
			}
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			uuid, err := doms[i].GetUUIDString()
			if err != nil {
				return err
			}
			s, reason, err := doms[i].GetState()
			if libvirtCode(err) == libvirt.ERR_NO_DOMAIN { // undefined meanwhile
				continue
			}
			if err != nil {
				return err
			}
			d := Domain{Name: name, UUID: uuid, State: stateFrom(s, reason), Forced: forcedOff(s, reason), Saved: savedOff(s, reason)}
			switch s {
			case libvirt.DOMAIN_SHUTOFF:
				// Asked of every shut-off domain, not only of one "shut off (saved)": a
				// libvirtd restarted since (a host reboot) need not keep that reason.
				d.ManagedSave, _ = doms[i].HasManagedSaveImage(0)
			case libvirt.DOMAIN_PAUSED:
				// A save keeps its guest paused, under the reason it had before when it
				// was paused already: only the job tells a save under way from one that
				// failed. Not knowing counts as under way (nothing is concluded).
				info, err := doms[i].GetJobInfo()
				d.Busy = err != nil || info.Type != libvirt.DOMAIN_JOB_NONE
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("list domains on", l.uri, err)
	}
	return out, nil
}
