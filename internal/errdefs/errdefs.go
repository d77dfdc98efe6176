// Package errdefs holds the sentinel errors every vws component wraps (with %w and
// context) and the SOAP adapter maps to typed faults at exactly one boundary.
package errdefs

import (
	"errors"
	"fmt"
	"time"
)

// Client errors: the request was wrong; retrying it unchanged will fail again.
var (
	ErrBadRequest          = errors.New("bad request")
	ErrResourceUnknown     = errors.New("resource unknown")
	ErrInvalidQName        = errors.New("invalid resource property QName")
	ErrInvalidQuery        = errors.New("invalid query expression")
	ErrUnknownQueryDialect = errors.New("unknown query expression dialect")
	ErrInvalidModification = errors.New("invalid resource property modification")
	ErrUnableToModify      = errors.New("resource property is not writable")
	ErrUnableToSetTermTime = errors.New("unable to set termination time")
	ErrTermTimeRejected    = errors.New("termination time change rejected")
	ErrActionNotSupported  = errors.New("action not supported")
	ErrMetadata            = errors.New("workspace metadata invalid")
	ErrAuthorization       = errors.New("not authorized")
	ErrQuotaExceeded       = errors.New("quota exceeded")
	ErrState               = errors.New("operation not valid in this state")
	ErrLocked              = errors.New("workspace locked")
	// ErrSecurity: a WS-Security header is missing, invalid, expired or replayed.
	ErrSecurity = errors.New("message security check failed")
)

// WS-BaseNotification client errors: a Subscribe, Renew or subscription change that
// cannot be carried out as asked.
var (
	ErrSubscribe                   = errors.New("subscription not created")
	ErrTopicNotSupported           = errors.New("topic not supported")
	ErrInvalidTopic                = errors.New("invalid topic expression")
	ErrTopicDialectUnknown         = errors.New("unknown topic expression dialect")
	ErrInvalidFilter               = errors.New("invalid filter")
	ErrUnacceptableInitialTermTime = errors.New("unacceptable initial termination time")
	ErrUnacceptableTermTime        = errors.New("unacceptable termination time")
	ErrUnrecognizedPolicy          = errors.New("unrecognized subscription policy")
	ErrUnsupportedPolicy           = errors.New("unsupported subscription policy")
)

// Server errors: something on our side failed.
var (
	ErrNotDestroyed   = errors.New("resource not destroyed")
	ErrCreation       = errors.New("workspace creation failed")
	ErrImageIntegrity = errors.New("image integrity check failed")
	ErrHypervisor     = errors.New("hypervisor failure")
	ErrNotImplemented = errors.New("operation not implemented")
	ErrQueryTooCostly = errors.New("query exceeded its evaluation budget")
	// ErrStorageFull: the server's storage has no room for what the operation would
	// write; the message says where, for the caller to pass on to the administrator.
	ErrStorageFull = errors.New("storage full")
	// ErrUnavailable: a service this one needs did not answer; the message says which
	// and what became of the request.
	ErrUnavailable = errors.New("service unavailable")
)

// OfKind returns err, which errors.Is also finds to be kind, its message unchanged:
// for an error written for callers whose words do not start with kind's.
func OfKind(err, kind error) error { return &kinded{err: err, kind: kind} }

type kinded struct{ err, kind error }

func (e *kinded) Error() string   { return e.err.Error() }
func (e *kinded) Unwrap() []error { return []error{e.err, e.kind} }

// StateError names both the current and the requested state, as WorkspaceStateFault must.
type StateError struct {
	Current   string
	Requested string
	// Err, if set, is the refusal in the words of the code that made it, which are
	// then the message: the states are the fault's detail, not all there is to say.
	Err error
}

func (e *StateError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	if e.Current == e.Requested {
		return fmt.Sprintf("workspace is already %s (current and requested state)", e.Current)
	}
	return fmt.Sprintf("workspace is %s; cannot go to %s", e.Current, e.Requested)
}

// Unwrap gives ErrState even when Err does not wrap it, and Err, whose advice and
// causes stay visible to errors.As and errors.Is.
func (e *StateError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Err, ErrState}
	}
	return []error{ErrState}
}

// Hint attaches advice for the caller ("what to do") to an error without hiding its cause.
type Hint struct {
	Err    error
	Advice string
}

func (h *Hint) Error() string { return h.Err.Error() }
func (h *Hint) Unwrap() error { return h.Err }

// WithAdvice wraps err with advice the fault description appends.
func WithAdvice(err error, advice string) error { return &Hint{Err: err, Advice: advice} }

// Advice returns the outermost advice attached to err, if any.
func Advice(err error) string {
	var h *Hint
	if errors.As(err, &h) {
		return h.Advice
	}
	return ""
}

// LockedError names who holds a workspace's lock.
type LockedError struct{ Holder string }

func (e *LockedError) Error() string { return "workspace is checked out to " + e.Holder }
func (e *LockedError) Unwrap() error { return ErrLocked }

// MetadataError names the element of a description that is wrong.
type MetadataError struct {
	Path   string
	Reason string
}

func (e *MetadataError) Error() string { return e.Path + ": " + e.Reason }
func (e *MetadataError) Unwrap() error { return ErrMetadata }

// TimeBoundsError is an unacceptable (initial) termination time with the bounds the
// service accepts, which WSN 1.3's faults for it must carry.
type TimeBoundsError struct {
	Err      error // wraps ErrUnacceptableInitialTermTime or ErrUnacceptableTermTime
	Min, Max time.Time
}

func (e *TimeBoundsError) Error() string { return e.Err.Error() }
func (e *TimeBoundsError) Unwrap() error { return e.Err }
