package repository

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

// TestAnnounceHostRefusesFreeMemoryWithoutTotal: free memory is believed only next
// to the total it is part of (every vws manager sends both); alone it could claim up
// to 2^40 MiB and win every placement by free memory.
func TestAnnounceHostRefusesFreeMemoryWithoutTotal(t *testing.T) {
	f := newFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	noTotal := strings.Replace(strings.Replace(goodHost, "<repo:MemoryTotalMiB>32768</repo:MemoryTotalMiB>", "", 1), ">16384<", ">1099511627776<", 1)
	_, err := f.r.announceHost(node7, announcement(t, noTotal, "PT3M"))
	if !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), "MemoryFreeMiB without MemoryTotalMiB") {
		t.Fatalf("got %v, want a bad request saying MemoryFreeMiB without MemoryTotalMiB", err)
	}
	if live := f.r.hosts.Live(f.r.now()); len(live) != 0 {
		t.Fatalf("a refused announcement was recorded: %+v", live)
	}
}
