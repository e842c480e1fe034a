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
	"io/fs"
	"math/big"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go"
)

func TestFailureClassification(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("natsclient: publish %q: %w", "a", err) }
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	transport := []error{
		nats.ErrConnectionClosed, nats.ErrReconnectBufExceeded, nats.ErrStaleConnection,
		nats.ErrNoServers, opErr, wrap(nats.ErrConnectionClosed), wrap(syscall.ECONNRESET),
		classify.ConnectionTimeout(nats.ErrTimeout), wrap(classify.ConnectionTimeout(fmt.Errorf("%w after 5s", nats.ErrTimeout))),
	}
	callers := []error{
		nil, context.Canceled, context.DeadlineExceeded, wrap(context.DeadlineExceeded),
		nats.ErrNoResponders, nats.ErrBadSubject, nats.ErrMaxPayload, errNilContext,
		ValidateSubject("a b"), fmt.Errorf("decode: %w", fmt.Errorf("bad json")),
		// A request's timeout: the responder, not the connection, was slow.
		nats.ErrTimeout, wrap(nats.ErrTimeout),
	}
	for _, err := range transport {
		if !classify.TransportFailure(err) {
			t.Errorf("%v not counted as a transport failure", err)
		}
	}
	for _, err := range callers {
		if classify.TransportFailure(err) {
			t.Errorf("%v counted as a transport failure", err)
		}
	}

	permanent := []error{
		nats.ErrAuthorization, wrap(nats.ErrAuthorization), nats.ErrSecureConnRequired,
		x509.UnknownAuthorityError{}, &fs.PathError{Op: "open", Path: "x.creds", Err: fs.ErrNotExist},
	}
	for _, err := range permanent {
		if !classify.Permanent(err) {
			t.Errorf("%v not permanent", err)
		}
	}
	for _, err := range []error{opErr, nats.ErrNoServers, nats.ErrTimeout} {
		if classify.Permanent(err) {
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
		if !classify.Permanent(err) {
			t.Errorf("%v not permanent", err)
		}
		if classify.TransportFailure(err) && !errors.As(err, &op) {
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
