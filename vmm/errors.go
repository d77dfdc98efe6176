package vmm

import (
	"errors"
	"fmt"
	"strings"

	"libvirt.org/go/libvirt"

	"github.com/vws-grid/vws/internal/errdefs"
)

// ErrNoDomain reports that libvirt knows no domain of the given name (VIR_ERR_NO_DOMAIN).
var ErrNoDomain = errors.New("no such domain")

// ErrNoManagedSave reports a domain without the managed-save image a call needs.
var ErrNoManagedSave = errors.New("no managed-save image")

// ErrOutcomeUnknown reports a mutating call whose request reached libvirtd but whose
// answer never came back (libvirtd stopped answering or went away): libvirtd may
// have carried it out, or may still. Whoever cleans up after a failed call must
// leave what the call may yet write (a save's memory image) in place.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ErrInvalidSpec reports a Spec (or a path argument) that fails validation. Nothing
// reaches libvirt when it is returned.
var ErrInvalidSpec = fmt.Errorf("invalid domain spec: %w", errdefs.ErrBadRequest)

// hvError is a libvirt failure with its context. It unwraps to both
// errdefs.ErrHypervisor and the libvirt error itself.
type hvError struct {
	op, name string
	detail   string // optional explanation before libvirt's message
	err      error
	unknown  bool // the call may have been carried out: unwraps to ErrOutcomeUnknown too
}

func (e *hvError) Error() string {
	msg := e.err.Error()
	var lerr libvirt.Error
	if errors.As(e.err, &lerr) {
		msg = "libvirt: " + lerr.Message
	}
	if e.detail != "" {
		msg = e.detail + ": " + msg
	}
	if e.name == "" {
		return e.op + ": " + msg
	}
	return e.op + " " + e.name + ": " + msg
}

func (e *hvError) Unwrap() []error {
	if e.unknown {
		return []error{errdefs.ErrHypervisor, ErrOutcomeUnknown, e.err}
	}
	return []error{errdefs.ErrHypervisor, e.err}
}

// wrap turns a libvirt error into ErrNoDomain or a hypervisor error naming op and name.
// Other errors (already wrapped by this package) pass unchanged.
func wrap(op, name string, err error) error {
	var lerr libvirt.Error
	var hv *hvError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &hv), !errors.As(err, &lerr): // already in context, or not libvirt's
		return err
	case lerr.Code == libvirt.ERR_NO_DOMAIN:
		return fmt.Errorf("%s %s: %w", op, name, ErrNoDomain)
	case lerr.Code == libvirt.ERR_NO_NETWORK:
		return errdefs.WithAdvice(&hvError{op: op, name: name, err: err},
			"the workspace's NIC joins a network this host does not have (virsh net-list --all lists those it has): deploy it on a host that has it")
	case lerr.Code == libvirt.ERR_OPERATION_INVALID && strings.Contains(lerr.Message, "network '") && strings.Contains(lerr.Message, "is not active"):
		net := quoted(lerr.Message)
		return errdefs.WithAdvice(&hvError{op: op, name: name, err: err},
			fmt.Sprintf("the site administrator must start network %s: virsh net-start %s (virsh net-autostart %s keeps it started across reboots); then repeat", net, net, net))
	default:
		return &hvError{op: op, name: name, err: err}
	}
}

// quoted is the first 'single-quoted' word of a libvirt message.
func quoted(msg string) string {
	_, rest, ok := strings.Cut(msg, "'")
	if !ok {
		return "NAME"
	}
	word, _, _ := strings.Cut(rest, "'")
	return word
}

// unsupportedFlags reports whether err is a driver rejecting flags it does not know
// (libvirt's test driver; libxl lacks some too). Nothing was done, so a retry with
// fewer flags is safe.
func unsupportedFlags(err error) bool {
	var lerr libvirt.Error
	return errors.As(err, &lerr) && lerr.Code == libvirt.ERR_INVALID_ARG && strings.Contains(lerr.Message, "unsupported flags")
}

func libvirtCode(err error) libvirt.ErrorNumber {
	var lerr libvirt.Error
	if errors.As(err, &lerr) {
		return lerr.Code
	}
	return libvirt.ERR_OK
}

// invalid builds an ErrInvalidSpec naming the offending field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidSpec, field, fmt.Sprintf(format, args...))
}
