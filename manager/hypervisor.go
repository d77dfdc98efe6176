package manager

import (
	"context"
	"time"

	"github.com/vws-grid/vws/vmm"
)

// Hypervisor is what the Manager needs of the host's hypervisor; vmm.Libvirt provides
// it. Every call takes the request's context first.
type Hypervisor interface {
	Host(ctx context.Context) (vmm.HostInfo, error)
	DomainType() string
	Define(ctx context.Context, s vmm.Spec) error
	Start(ctx context.Context, name string) error
	StartPaused(ctx context.Context, name string) error
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	Shutdown(ctx context.Context, name string, grace time.Duration) (forced bool, err error)
	Stop(ctx context.Context, name string) error
	Save(ctx context.Context, name, path string) error
	Restore(ctx context.Context, path string, s vmm.Spec, paused bool) error
	// SavedMemoryMiB is the memory of the guest a save image holds, which a restore
	// gives it whatever the host would grant afresh.
	SavedMemoryMiB(ctx context.Context, path string) (int64, error)
	RestoreManagedSave(ctx context.Context, name string, paused bool) error
	RemoveManagedSave(ctx context.Context, name string) error
	Undefine(ctx context.Context, name string) error
	State(ctx context.Context, name string) (vmm.State, error)
	List(ctx context.Context, prefix string) ([]vmm.Domain, error)
}

// eventSource is a hypervisor that reports domain lifecycle events as they happen
// (vmm.Libvirt does); with one, the Manager reconciles a guest that powered off or
// vanished at once instead of on its next timer round.
type eventSource interface {
	Watch(fn func(vmm.Event))
}
