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
	// ErrCorrupt is matched by Open's error when the file is damaged: its
	// structure is not one bbolt can read safely (a truncated file, a page
	// that is not what it should be), or it lacks what every outbox file
	// holds. The error names the path and what was wrong; the file is left
	// as it is. WithSalvage makes Open set such a file aside and keep what
	// can be verified of it instead. A later fault of the file's bbolt
	// structure, met while the outbox runs, matches it too.
	ErrCorrupt = errors.New("outbox: damaged file")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("outbox: closed")
)
