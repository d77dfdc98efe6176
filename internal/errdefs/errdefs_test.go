package errdefs

import (
	"errors"
	"testing"
)

func TestStateErrorNamesBothStates(t *testing.T) {
	for _, tt := range []struct {
		err  StateError
		want string
	}{
		{StateError{Current: "shutdown", Requested: "paused"}, "workspace is shutdown; cannot go to paused"},
		{StateError{Current: "running", Requested: "running"}, "workspace is already running (current and requested state)"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.err, got, tt.want)
		}
		if !errors.Is(&tt.err, ErrState) {
			t.Errorf("%+v is not ErrState", tt.err)
		}
	}
}
