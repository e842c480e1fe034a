package outbox

import "errors"

// Sentinel errors. Errors the outbox returns wrap their cause with %w, so
// errors.Is matches both these and what lies beneath (a bbolt error, a
// jetstream API error).
var (
	// ErrFull is matched by Publish's error when the message does not fit in
	// the disk budget (WithMaxBytes) and the overflow policy is Reject, or
	// when the message alone is larger than the whole budget.
	ErrFull = errors.New("outbox: full")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("outbox: closed")
)
