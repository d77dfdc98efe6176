package container

import (
	"strings"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
)

// PassOn returns the error that a fault another vws service answered stands for (its
// description, as client.FaultError has it, and the fault itself, which may be nil),
// so that this service passes it on to its own caller as the same fault: of the type
// sentinel stands for (SentinelOf of the fault's type, or the caller's choice for a
// ServiceFault), saying what the other service said and advising what it advised,
// each once, with the typed detail (ElementPath, LockHolder, CurrentState, …) the
// fault type requires. context, if not empty, says what was being done ("the repository refused
// to check the workspace out"); it follows the "<sentinel>: " a description starts
// with. Without it the description is passed on as it was.
//
// The other service rendered its error as "<message>; <advice>": the advice is split
// off after the last "; " and kept as advice, so that the fault type's general advice
// is not appended after it. Where the advice itself holds "; ", the split falls
// within it, and the two parts rendered again read as they did.
func PassOn(sentinel error, description string, fault *soap.Fault, context string) error {
	msg, advice := description, ""
	if i := strings.LastIndex(msg, "; "); i >= 0 {
		msg, advice = msg[:i], msg[i+2:]
	}
	if context != "" {
		prefix := sentinel.Error() + ": "
		msg = prefix + context + ": " + strings.TrimPrefix(msg, prefix)
	}
	err := error(&passedOn{sentinel: sentinel, msg: msg, detail: typedDetail(fault)})
	if advice != "" {
		err = errdefs.WithAdvice(err, advice)
	}
	return err
}

// passedOn is another service's fault, passed on.
type passedOn struct {
	sentinel error
	msg      string
	detail   [][2]string // local name and text of the vws detail elements
}

func (e *passedOn) Error() string { return e.msg }
func (e *passedOn) Unwrap() error { return e.sentinel }

// typedDetail returns the elements of vws's fault namespace in fault's BaseFault.
func typedDetail(fault *soap.Fault) [][2]string {
	if fault == nil || len(fault.Detail) == 0 {
		return nil
	}
	var out [][2]string
	for _, c := range fault.Detail[0].ChildElements() {
		if c.NamespaceURI() == FaultNS {
			out = append(out, [2]string{c.Tag, strings.TrimSpace(c.Text())})
		}
	}
	return out
}
