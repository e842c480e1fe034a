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
	"os"
	"reflect"
	"strings"
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
// nats.ErrTimeout is not among them: see connectionTimeout.
var transportErrors = []error{
	nats.ErrConnectionClosed,
	nats.ErrConnectionReconnecting,
	nats.ErrReconnectBufExceeded,
	nats.ErrStaleConnection,
	nats.ErrNoServers,
	nats.ErrInvalidConnection,
	nats.ErrDisconnected,
	io.EOF,
	io.ErrUnexpectedEOF,
	net.ErrClosed,
	syscall.ECONNREFUSED,
	syscall.ECONNRESET,
	syscall.EPIPE,
}

// connTimeoutError marks a timeout of the connection itself: the server the
// client is connected to did not answer a flush (its PONG) in time.
type connTimeoutError struct{ err error }

func (e *connTimeoutError) Error() string { return e.err.Error() }
func (e *connTimeoutError) Unwrap() error { return e.err }

// connectionTimeout marks err, a timeout waiting for the connected server's
// own answer, as one the breaker counts.
func connectionTimeout(err error) error { return &connTimeoutError{err: err} }

// isTransportFailure decides what the breaker counts. It is the single place
// where that decision lives (see docs/design.md, "What counts as a failure"):
// dial failures, a closed or stale connection, a full reconnect buffer and
// the connected server not answering a flush in time count; the caller's
// context ending, no responders, invalid subjects, oversized payloads and
// anything the server refused for the data's sake do not.
//
// Nor does a request's timeout (nats.ErrTimeout, or the deadline of a
// JetStream call): it says that whoever answers the request did not answer
// in time, and that may be a service, a stream leader on another server, or
// the JetStream of a hub behind a leaf node's frozen or slow link, while the
// client's own connection is fine. Whether the connection answers is what
// the breaker is about, and a flush or the supervisor's probe asks it.
func isTransportFailure(err error) bool {
	if err == nil {
		return false
	}
	var connTimeout *connTimeoutError
	if errors.As(err, &connTimeout) {
		return true
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
// again: bad credentials, TLS trust or handshake failures, a server refusing
// the client's certificate, a TLS mismatch, or credentials, key or
// certificate files of the client's own that cannot be read, parsed or used.
// It is the single place where that decision lives.
func isPermanent(err error) bool {
	if err == nil || plainlyTransient(err) {
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
	if _, refused := tlsRefusal(err); refused || closedAfterTLSHandshake(err) {
		return true
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalidCert      x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
		alert            tls.AlertError
		credentials      *credentialsError
		option           *optionError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalidCert) || errors.As(err, &verification) ||
		errors.As(err, &recordHeader) || errors.As(err, &alert) ||
		errors.As(err, &credentials) || errors.As(err, &option)
}

// plainlyTransient reports, without the reflection errors.As does, that err
// is a connection failure none of isPermanent's checks can match: a chain of
// fmt's %w wrapping, *net.OpError and *os.SyscallError that ends in io.EOF or
// in a socket error of a server that is down or out of reach. A fleet's down
// server gives every client one such error per reconnect round, and the
// full classification walks the chain once per check. Any other link (a TLS
// alert inside a *net.OpError, a wrapper of another type) leaves the answer
// to the full classification.
func plainlyTransient(err error) bool {
	for {
		switch e := err.(type) {
		case *net.OpError:
			err = e.Err
		case *os.SyscallError:
			err = e.Err
		case syscall.Errno:
			return transientErrnos[e]
		default:
			if err == io.EOF {
				return true
			}
			if reflect.TypeOf(err) != fmtWrapError {
				return false
			}
			err = errors.Unwrap(err)
		}
	}
}

// fmtWrapError is the type of fmt.Errorf's error with one %w.
var fmtWrapError = reflect.TypeOf(fmt.Errorf("%w", io.EOF))

// transientErrnos are the socket errors of a server that is down, restarting
// or out of reach. EACCES and EPERM are not among them: they match
// fs.ErrPermission, which isPermanent counts.
var transientErrnos = map[syscall.Errno]bool{
	syscall.ECONNREFUSED: true, syscall.ECONNRESET: true, syscall.ECONNABORTED: true,
	syscall.ETIMEDOUT: true, syscall.EHOSTUNREACH: true, syscall.ENETUNREACH: true,
	syscall.EPIPE: true,
}

// refusingAlerts are the TLS alerts a server sends when it will not accept
// this client as configured: its certificate (missing, from an unknown CA,
// expired, unfit for client use) or the protocol it offers. Alerts that can
// come from a damaged or interrupted connection (internal_error,
// decode_error, bad_record_mac, ...) are left to count as transport failures.
var refusingAlerts = map[tls.AlertError]bool{
	40:  true, // handshake_failure
	42:  true, // bad_certificate
	43:  true, // unsupported_certificate
	44:  true, // certificate_revoked
	45:  true, // certificate_expired
	46:  true, // certificate_unknown
	48:  true, // unknown_ca
	49:  true, // access_denied
	70:  true, // protocol_version
	71:  true, // insufficient_security
	112: true, // unrecognized_name
	116: true, // certificate_required
	120: true, // no_application_protocol
}

// tlsRefusal returns the alert a TLS server sent to refuse the handshake.
// crypto/tls reports an alert it receives as a *net.OpError with Op "remote
// error" around its own unexported alert type (a uint8), not as the
// exported tls.AlertError, which only describes alerts it sends; so the
// alert's code is read by reflection, and never from the message text.
func tlsRefusal(err error) (tls.AlertError, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 || v.Type().PkgPath() != "crypto/tls" {
		return 0, false
	}
	alert := tls.AlertError(v.Uint())
	return alert, refusingAlerts[alert]
}

// closedAfterTLSHandshake reports the other way a server refuses a client's
// certificate under TLS 1.3: the client's side of the handshake completes,
// the client writes its CONNECT, and the server's alert is lost because the
// server closed the socket first (the write meets a reset, or the read an
// EOF). nats.go recognises this state (its tlsHandshakeEOF) but marks it
// only in words, so this is the one place a message is matched; the mTLS
// tests meet this case against a real server and pin the phrase.
func closedAfterTLSHandshake(err error) bool {
	return errors.Is(err, nats.ErrTLS) && strings.Contains(err.Error(), "closed by remote after TLS handshake")
}

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

// optionError is the failure of a connection option when it was applied
// for a dial (a nats.go option given through WithNATSOptions that loads a
// client certificate or a CA file, say). Options are configuration:
// applying them again gives the same answer, so this is permanent.
type optionError struct{ err error }

func (e *optionError) Error() string { return "natsclient: connection option: " + e.err.Error() }
func (e *optionError) Unwrap() error { return e.err }

// permanentError marks err as permanent and says why in words a reader of a
// log line understands, while keeping the nats.go error matchable. The
// servers are shown redacted (see redact.go).
func permanentError(servers []string, err error) error {
	var (
		reason      string
		credentials *credentialsError
		option      *optionError
	)
	_, refused := tlsRefusal(err)
	refused = refused || closedAfterTLSHandshake(err)
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
	case refused:
		reason = "the server refused the client's TLS certificate or parameters"
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		reason = "TLS mismatch between client and server"
	default:
		reason = "TLS handshake or certificate verification failed"
	}
	return fmt.Errorf("%w: connect to %s: %s: %w", ErrPermanent, redactServers(servers), reason, err)
}
