// Package vmm is the hypervisor seam's libvirt implementation (KVM, QEMU/TCG, Xen),
// consumed by the Manager through the small interface the Manager declares. It is
// filled in by the manager issue.
package vmm
