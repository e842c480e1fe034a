package classify

import (
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

	"github.com/nats-io/nats.go"
)

// Permanent reports whether a connection error cannot be fixed by dialling
// again: bad credentials, TLS trust or handshake failures, a server refusing
// the client's certificate, a TLS mismatch, or an error that says of itself
// that it is permanent (a Permanent method that returns true: natsclient's
// credentials, key or certificate files of the client's own that cannot be
// read, parsed or used, and connection options that fail when applied).
func Permanent(err error) bool {
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
	if TLSRefused(err) {
		return true
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalidCert      x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
		alert            tls.AlertError
		marked           interface{ Permanent() bool }
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalidCert) || errors.As(err, &verification) ||
		errors.As(err, &recordHeader) || errors.As(err, &alert) ||
		errors.As(err, &marked) && marked.Permanent()
}

// plainlyTransient reports, without the reflection errors.As does, that err
// is a connection failure none of Permanent's checks can match: a chain of
// fmt's %w wrapping, *net.OpError and *os.SyscallError that ends in io.EOF or
// in a socket error of a server that is down or out of reach. A fleet's down
// server gives every client one such error per reconnect round, and the
// full classification walks the chain once per check: its errors.As walks
// were 5% of a fleet's CPU while the server was down. Any other link (a TLS
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
// fs.ErrPermission, which Permanent counts.
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

// TLSRefused reports whether a TLS server refused the client: it sent one of
// refusingAlerts, or closed the connection right after the handshake (see
// closedAfterTLSHandshake).
func TLSRefused(err error) bool {
	_, refused := tlsRefusal(err)
	return refused || closedAfterTLSHandshake(err)
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
