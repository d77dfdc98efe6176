package errdefs

import (
	"errors"
	"fmt"
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

// TestStateErrorKeepsItsWords: a refusal that says more than the two states keeps its
// own message and advice, and is ErrState whether or not its words wrap it.
func TestStateErrorKeepsItsWords(t *testing.T) {
	words := WithAdvice(fmt.Errorf("%w: workspace k is unstaging on host a; Start is refused", ErrState), "wait")
	for _, err := range []error{
		&StateError{Current: "unstaging", Requested: "running", Err: words},
		&StateError{Current: "unstaging", Requested: "running", Err: errors.New("workspace k is unstaging")},
	} {
		se := err.(*StateError)
		if got := err.Error(); got != se.Err.Error() {
			t.Errorf("message %q, want the refusal's own %q", got, se.Err.Error())
		}
		if !errors.Is(err, ErrState) {
			t.Errorf("%v is not ErrState", err)
		}
	}
	if got := Advice(&StateError{Current: "unstaging", Requested: "running", Err: words}); got != "wait" {
		t.Errorf("advice %q, want the refusal's own", got)
	}
}
