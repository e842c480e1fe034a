package natsclient

import (
	"context"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestFailureClassification(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("natsclient: publish %q: %w", "a", err) }
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	transport := []error{
		nats.ErrConnectionClosed, nats.ErrReconnectBufExceeded, nats.ErrStaleConnection,
		nats.ErrNoServers, opErr, wrap(nats.ErrConnectionClosed), wrap(syscall.ECONNRESET),
	}
	callers := []error{
		nil, context.Canceled, context.DeadlineExceeded, wrap(context.DeadlineExceeded),
		nats.ErrNoResponders, nats.ErrBadSubject, nats.ErrMaxPayload, errNilContext,
		badSubject("a b", "whitespace"), fmt.Errorf("decode: %w", fmt.Errorf("bad json")),
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
