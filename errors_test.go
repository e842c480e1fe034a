package natsclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestFailureClassification(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("natsclient: publish %q: %w", "a", err) }
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	transport := []error{
		nats.ErrConnectionClosed, nats.ErrReconnectBufExceeded, nats.ErrStaleConnection,
		nats.ErrNoServers, opErr, wrap(nats.ErrConnectionClosed), wrap(syscall.ECONNRESET),
		connectionTimeout(nats.ErrTimeout), wrap(connectionTimeout(fmt.Errorf("%w after 5s", nats.ErrTimeout))),
	}
	callers := []error{
		nil, context.Canceled, context.DeadlineExceeded, wrap(context.DeadlineExceeded),
		nats.ErrNoResponders, nats.ErrBadSubject, nats.ErrMaxPayload, errNilContext,
		badSubject("a b", "whitespace"), fmt.Errorf("decode: %w", fmt.Errorf("bad json")),
		// A request's timeout: the responder, not the connection, was slow.
		nats.ErrTimeout, wrap(nats.ErrTimeout),
	}
	for _, err := range transport {
		if !isTransportFailure(err) {
			t.Errorf("%v not counted as a transport failure", err)
		}
	}
	for _, err := range callers {
		if isTransportFailure(err) {
			t.Errorf("%v counted as a transport failure", err)
		}
	}

	permanent := []error{
		nats.ErrAuthorization, wrap(nats.ErrAuthorization), nats.ErrSecureConnRequired,
		x509.UnknownAuthorityError{}, &fs.PathError{Op: "open", Path: "x.creds", Err: fs.ErrNotExist},
	}
	for _, err := range permanent {
		if !isPermanent(err) {
			t.Errorf("%v not permanent", err)
		}
	}
	for _, err := range []error{opErr, nats.ErrNoServers, nats.ErrTimeout} {
		if isPermanent(err) {
			t.Errorf("%v taken as permanent: it would never be retried", err)
		}
	}
}

// The client's own unusable files, a connection option that fails, and a
// TLS alert by which a server refuses the client are permanent.
func TestPermanentClassification(t *testing.T) {
	refusal := remoteAlert(t, tls.RequireAnyClientCert)
	var op *net.OpError
	if !errors.As(refusal, &op) || op.Op != "remote error" {
		t.Fatalf("a refused handshake gave %#v, want a *net.OpError for a remote alert", refusal)
	}
	permanent := []error{
		refusal,
		fmt.Errorf("nats: tls error: %w", refusal),
		&credentialsError{kind: "credentials file", file: "a.creds", problem: "holds no user JWT"},
		&optionError{err: errors.New("nats: error loading client certificate: tls: failed to parse private key")},
	}
	for _, err := range permanent {
		if !isPermanent(err) {
			t.Errorf("%v not permanent", err)
		}
		if isTransportFailure(err) && !errors.As(err, &op) {
			t.Errorf("%v also counted as a transport failure", err)
		}
	}
	msg := permanentError([]string{"nats://alice:secret@host:4222"}, refusal).Error()
	if strings.Contains(msg, "secret") || !strings.Contains(msg, "nats://alice:xxxxx@host:4222") ||
		!strings.Contains(msg, "refused the client's TLS certificate") {
		t.Errorf("permanent error text: %s", msg)
	}
}

// remoteAlert runs a TLS 1.2 handshake, in memory, against a server that
// requires a client certificate the client does not have, and returns the
// client's error: the server's alert as crypto/tls reports it.
func remoteAlert(t *testing.T, auth tls.ClientAuthType) error {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	clientEnd, serverEnd := net.Pipe()
	defer clientEnd.Close()
	srv := tls.Server(serverEnd, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth:   auth, MaxVersion: tls.VersionTLS12,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Handshake() // fails: that is the point
		serverEnd.Close()
	}()
	err = tls.Client(clientEnd, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}).Handshake()
	<-done
	if err == nil {
		t.Fatal("handshake without the required client certificate succeeded")
	}
	return err
}

// plainlyTransient is isPermanent's shortcut for the errors a down server
// gives: it may answer only where the full classification says "not
// permanent", and it must answer for the errors a refused or reset dial
// really returns, or it saves nothing.
func TestPlainlyTransientAgreesWithTheFullClassification(t *testing.T) {
	reconnect := func(err error) error { return fmt.Errorf("natsclient: reconnect: %w", err) }
	refused := dialClosedPort(t)
	shortcut := []error{
		refused, reconnect(refused), io.EOF, reconnect(io.EOF),
		reconnect(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}),
		&net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE},
	}
	for _, err := range shortcut {
		if !plainlyTransient(err) {
			t.Errorf("%v (%T) not taken by the shortcut", err, err)
		}
		if isPermanentWithoutShortcut(err) {
			t.Errorf("%v taken by the shortcut, but the full classification says permanent", err)
		}
	}
	// Errors the shortcut must leave to the full classification.
	left := []error{
		reconnect(&net.OpError{Op: "remote error", Err: tls.AlertError(42)}),
		reconnect(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EACCES)}),
		&fs.PathError{Op: "open", Path: "x.creds", Err: fs.ErrNotExist},
		reconnect(&optionError{err: io.EOF}),
		reconnect(nats.ErrAuthorization),
		reconnect(nil),
	}
	for _, err := range left {
		if plainlyTransient(err) {
			t.Errorf("%v taken by the shortcut: only the full classification may judge it", err)
		}
	}
}

// isPermanentWithoutShortcut is isPermanent's full classification: err
// behind a wrapper the shortcut does not know.
func isPermanentWithoutShortcut(err error) bool { return isPermanent(&notPlain{err}) }

// notPlain wraps an error in a type the shortcut does not know.
type notPlain struct{ err error }

func (e *notPlain) Error() string { return e.err.Error() }
func (e *notPlain) Unwrap() error { return e.err }

// dialClosedPort returns the error of a dial to a port nothing listens on.
func dialClosedPort(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conn, err := net.Dial("tcp", addr)
	if err == nil {
		conn.Close()
		t.Fatalf("a dial to %s, just closed, connected", addr)
	}
	return err
}
