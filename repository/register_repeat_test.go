package repository

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

// TestRegisterRepeatAfterLostAnswer: the Factory asks again, with the same RequestID,
// when the answer to RegisterWorkspace was lost. The repeat is answered with the
// workspace the first made, under its key, even with the owner's workspace quota used
// up by that workspace; nothing is made twice. Another registration (another
// RequestID, none, or another owner) still finds the name taken.
func TestRegisterRepeatAfterLostAnswer(t *testing.T) {
	f := newFixture(t)
	f.quotaOpen("quota /O=Grid/CN=alice workspaces=1\n")
	spec := func(owner identity.Identity, request string) CreateSpec {
		return CreateSpec{Name: "job-1", Owner: owner.DN, Description: sizedDescription(0), BaseImage: f.base,
			Termination: time.Now().Add(time.Hour), RequestID: request}
	}
	first, err := f.r.Create(context.Background(), spec(alice, "req-1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.r.Create(context.Background(), spec(alice, "req-1"))
	if err != nil {
		t.Fatalf("the repeated registration: %v", err)
	}
	if again.Key != first.Key || again.Name != "job-1" {
		t.Fatalf("the repeat answered %+v; the first made %+v", again, first)
	}
	if n := len(f.r.List(Filter{})); n != 1 {
		t.Fatalf("%d workspaces after a registration and its repeat; want 1", n)
	}
	for _, c := range []struct {
		what  string
		spec  CreateSpec
		taken bool // refused for the name, not the quota
	}{
		{"another RequestID", spec(alice, "req-2"), false},
		{"no RequestID", spec(alice, ""), false},
		{"another owner", spec(bob, "req-1"), true},
	} {
		_, err := f.r.Create(context.Background(), c.spec)
		var me *errdefs.MetadataError
		switch {
		case err == nil:
			t.Errorf("%s: registered a second job-1", c.what)
		case c.taken && !errors.As(err, &me):
			t.Errorf("%s: want the name taken, got %v", c.what, err)
		case !c.taken && !errors.Is(err, errdefs.ErrQuotaExceeded) && !errors.As(err, &me):
			t.Errorf("%s: want a refusal (quota or name), got %v", c.what, err)
		}
	}
	// After a restart too: the RequestID is kept with the workspace.
	f.reopen()
	f.quotaOpen("quota /O=Grid/CN=alice workspaces=1\n")
	again, err = f.r.Create(context.Background(), spec(alice, "req-1"))
	if err != nil || again.Key != first.Key {
		t.Fatalf("the repeat after a restart: %+v, %v; want key %s", again, err, first.Key)
	}
}
