// Package errs holds the sentinel errors that natsclient's internal packages
// need as much as its API does: the error rules (internal/classify) tell a
// refused call from a failed one by them, and the wire checks
// (internal/wire) build ErrInvalidArgument errors. natsclient exports each
// as the same value (var ErrClosed = errs.ErrClosed), so errors.Is matches
// either name; the documentation users read is natsclient's.
package errs

import (
	"errors"
	"fmt"
)

// The sentinels natsclient exports under the same names.
var (
	ErrCircuitOpen     = errors.New("natsclient: circuit breaker is open")
	ErrNotConnected    = errors.New("natsclient: not connected to NATS")
	ErrClosed          = errors.New("natsclient: client is closed")
	ErrInvalidArgument = errors.New("natsclient: invalid argument")
)

// InvalidArgument builds an ErrInvalidArgument error naming what was wrong.
func InvalidArgument(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
