package natsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// Sentinel errors. Every error the client returns wraps the cause with %w, so
// errors.Is matches both these and the nats.go error beneath them.
var (
	// ErrCircuitOpen is matched by every call refused because the circuit
	// breaker is open. Such an error also wraps the failure that opened it.
	ErrCircuitOpen = errors.New("natsclient: circuit breaker is open")
	// ErrNotConnected is returned by calls made while the client has no
	// connection: before Connect succeeded, or between connections.
	ErrNotConnected = errors.New("natsclient: not connected to NATS")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("natsclient: client is closed")
	// ErrInvalidOption is matched by NewClient's error for an option with an
	// invalid value; the message names the option.
	ErrInvalidOption = errors.New("natsclient: invalid option")
	// ErrInvalidArgument is matched by errors for bad input to a call: an
	// invalid subject, a nil context or handler. Such a call counts nothing
	// against the breaker.
	ErrInvalidArgument = errors.New("natsclient: invalid argument")
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

// invalidArgument builds an ErrInvalidArgument error naming what was wrong.
func invalidArgument(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

var errNilContext = invalidArgument("nil context")

// transportErrors are the nats.go errors that say the connection to the
// server failed, as opposed to the caller's request being refused.
var transportErrors = []error{
	nats.ErrConnectionClosed,
	nats.ErrConnectionReconnecting,
	nats.ErrReconnectBufExceeded,
	nats.ErrStaleConnection,
	nats.ErrNoServers,
	nats.ErrTimeout,
	nats.ErrInvalidConnection,
	nats.ErrDisconnected,
	io.EOF,
	io.ErrUnexpectedEOF,
	net.ErrClosed,
	syscall.ECONNREFUSED,
	syscall.ECONNRESET,
	syscall.EPIPE,
}

// isTransportFailure decides what the breaker counts. It is the single place
// where that decision lives (see docs/design.md, "What counts as a failure"):
// dial failures, a closed or stale connection, a full reconnect buffer and
// timeouts of our own count; the caller's context ending, no responders,
// invalid subjects, oversized payloads and anything the server refused for
// the data's sake do not.
func isTransportFailure(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrInvalidArgument) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrMaxPayload) {
		return false
	}
	for _, t := range transportErrors {
		if errors.Is(err, t) {
			return true
		}
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// isPermanent reports whether a connection error cannot be fixed by dialling
// again: bad credentials, TLS trust or handshake failures, a TLS mismatch, or
// a credentials file that cannot be read.
func isPermanent(err error) bool {
	if err == nil {
		return false
	}
	for _, p := range []error{
		nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked,
		nats.ErrAccountAuthExpired, nats.ErrSecureConnRequired,
		nats.ErrSecureConnWanted, nats.ErrNkeysNotSupported,
		nats.ErrClientCertOrRootCAsRequired, fs.ErrNotExist, fs.ErrPermission,
	} {
		if errors.Is(err, p) {
			return true
		}
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalidCert      x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
		alert            tls.AlertError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalidCert) || errors.As(err, &verification) ||
		errors.As(err, &recordHeader) || errors.As(err, &alert)
}

// permanentError marks err as permanent and says why in words a reader of a
// log line understands, while keeping the nats.go error matchable.
func permanentError(url string, err error) error {
	reason := "connection refused permanently"
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		reason = "authorization failed (check user, password, token, nkey or credentials)"
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		reason = "credentials or key file cannot be read"
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		reason = "TLS mismatch between client and server"
	default:
		reason = "TLS handshake or certificate verification failed"
	}
	return fmt.Errorf("%w: connect to %s: %s: %w", ErrPermanent, url, reason, err)
}
