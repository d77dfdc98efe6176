// Package vmm is the hypervisor seam's libvirt implementation (KVM, QEMU/TCG, Xen).
//
// The Manager declares the small interface it consumes; *Libvirt satisfies it. A Spec
// describes a guest in host terms (paths, sizes, devices); Validate rejects anything that
// could smuggle markup or surprising paths into libvirt, and DomainXML turns a valid Spec
// into domain XML through libvirtxml types. The libvirt domain state is mapped to State in
// exactly one place (stateFrom).
//
// Errors: libvirt failures wrap errdefs.ErrHypervisor (with the operation and domain name);
// a missing domain is ErrNoDomain; a Spec that fails validation is ErrInvalidSpec, which
// wraps errdefs.ErrBadRequest.
//
// Connection: a *Libvirt keeps one libvirt connection and survives libvirtd restarts.
// Read-only calls that fail because the connection died reconnect once and retry;
// mutating calls reconnect beforehand when the connection is known dead, but are never
// retried (the first attempt may have reached libvirtd): they fail with an error that
// says libvirtd is unreachable and how to fix that.
package vmm
