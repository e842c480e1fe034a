package natsclient

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/c360/natsclient/internal/classify"
	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
)

// Sentinel errors. Every error the client returns wraps the cause with %w, so
// errors.Is matches both these and the nats.go error beneath them. Those set
// from internal/errs are the same values the error rules and the wire checks
// use there.
var (
	// ErrCircuitOpen is matched by every call refused because the circuit
	// breaker is open. Such an error also wraps the failure that opened it.
	ErrCircuitOpen = errs.ErrCircuitOpen
	// ErrNotConnected is returned by calls made while the client has no
	// connection: before Connect succeeded, or between connections.
	ErrNotConnected = errs.ErrNotConnected
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errs.ErrClosed
	// ErrInvalidOption is matched by NewClient's error for an option with an
	// invalid value; the message names the option.
	ErrInvalidOption = errors.New("natsclient: invalid option")
	// ErrInvalidArgument is matched by errors for bad input to a call: an
	// invalid subject, a nil context or handler. Such a call counts nothing
	// against the breaker.
	ErrInvalidArgument = errs.ErrInvalidArgument
	// ErrPermanent is matched by connection errors that retrying cannot fix:
	// an authorization violation, a TLS handshake or certificate failure, an
	// unreadable credentials file. Connect returns them at once.
	ErrPermanent = errors.New("natsclient: permanent connection error")
)

// CircuitOpenError is the error of a call refused by the open breaker. It
// matches ErrCircuitOpen and unwraps to the failure that opened the breaker.
type CircuitOpenError struct {
	// Cause is the transport failure that opened the breaker.
	Cause error
	// RetryAt is when the supervisor will next probe the server.
	RetryAt time.Time
}

// Error says that the breaker is open, and why.
func (e *CircuitOpenError) Error() string {
	if e.Cause == nil {
		return ErrCircuitOpen.Error()
	}
	return ErrCircuitOpen.Error() + ": " + e.Cause.Error()
}

// Is reports whether target is ErrCircuitOpen.
func (e *CircuitOpenError) Is(target error) bool { return target == ErrCircuitOpen }

// Unwrap returns the cause that opened the breaker.
func (e *CircuitOpenError) Unwrap() error { return e.Cause }

var errNilContext = errs.InvalidArgument("nil context")

// credentialsError is a credentials, key or certificate file of the
// client's own that cannot be read, parsed or used. Its text names the file
// and what is wrong with it, never the file's content; the cause it wraps
// is an error of fixed text (from os, nkeys or crypto/tls).
type credentialsError struct {
	kind    string // "credentials file", "client certificate", ...
	file    string
	problem string
	err     error
}

func (e *credentialsError) Error() string {
	msg := e.kind + " " + e.file + ": " + e.problem
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *credentialsError) Unwrap() error { return e.err }

// Permanent marks the error for classify.Permanent: the file is the same on
// the next dial.
func (e *credentialsError) Permanent() bool { return true }

// optionError is the failure of a connection option when it was applied
// for a dial (a nats.go option given through WithNATSOptions that loads a
// client certificate or a CA file, say). Options are configuration:
// applying them again gives the same answer, so this is permanent.
type optionError struct{ err error }

func (e *optionError) Error() string { return "natsclient: connection option: " + e.err.Error() }
func (e *optionError) Unwrap() error { return e.err }

// Permanent marks the error for classify.Permanent.
func (e *optionError) Permanent() bool { return true }

// permanentError marks err as permanent and says why in words a reader of a
// log line understands, while keeping the nats.go error matchable. The
// servers are shown redacted (see redact.go).
func permanentError(servers []string, err error) error {
	var (
		reason      string
		credentials *credentialsError
		option      *optionError
	)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		reason = "authorization failed (check user, password, token, nkey or credentials)"
	case errors.As(err, &credentials):
		reason = "the client's credentials cannot be used"
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		reason = "credentials or key file cannot be read"
	case errors.As(err, &option):
		reason = "a connection option cannot be applied"
	case classify.TLSRefused(err):
		reason = "the server refused the client's TLS certificate or parameters"
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		reason = "TLS mismatch between client and server"
	default:
		reason = "TLS handshake or certificate verification failed"
	}
	return fmt.Errorf("%w: connect to %s: %s: %w", ErrPermanent, redactServers(servers), reason, err)
}
