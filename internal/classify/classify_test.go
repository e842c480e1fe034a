package classify

import (
	"crypto/tls"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// "Duplicate message id is in process" (10158) answers a resend that met the
// first copy, under the same ID, still being stored:
//   - for MaybeSent, the write's outcome is open, not refused: the
//     linearizability check found a KV write reported failed that was then
//     stored;
//   - for Transient, the message is worth sending again, under the same ID,
//     rather than reporting a failure the server is about to contradict: the
//     resend that finds the first copy stored is acknowledged as its
//     duplicate. A leaderless stream in a cluster answered so
//     (TestPublishToStreamWaitsForALeaderlessStream, in CI).
func TestDuplicateInProcess(t *testing.T) {
	inProcess := &jetstream.APIError{Code: 409, ErrorCode: ErrCodeDuplicateInProcess, Description: "duplicate message id is in process"}
	for _, tc := range []struct {
		err                error
		maySent, sendAgain bool
	}{
		{inProcess, true, true},
		{fmt.Errorf("publish: %w", inProcess), true, true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, false, false},
		{nats.ErrTimeout, true, true},
		{nats.ErrNoResponders, false, true},
		{fmt.Errorf("%w: %w", errs.ErrCircuitOpen, inProcess), true, false},
	} {
		if got := MaybeSent(tc.err); got != tc.maySent {
			t.Errorf("MaybeSent(%v) = %v, want %v", tc.err, got, tc.maySent)
		}
		if got := Transient(tc.err); got != tc.sendAgain {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.sendAgain)
		}
	}
}

// plainlyTransient is Permanent's shortcut for the errors a down server
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
		reconnect(&optionFailed{err: io.EOF}),
		reconnect(nats.ErrAuthorization),
		reconnect(nil),
	}
	for _, err := range left {
		if plainlyTransient(err) {
			t.Errorf("%v taken by the shortcut: only the full classification may judge it", err)
		}
	}
}

// isPermanentWithoutShortcut is Permanent's full classification: err
// behind a wrapper the shortcut does not know.
func isPermanentWithoutShortcut(err error) bool { return Permanent(&notPlain{err}) }

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

// optionFailed is an error that says of itself that it is permanent, as
// natsclient's failed connection option does.
type optionFailed struct{ err error }

func (e *optionFailed) Error() string   { return "connection option: " + e.err.Error() }
func (e *optionFailed) Unwrap() error   { return e.err }
func (e *optionFailed) Permanent() bool { return true }

// A stream's answer is a refusal for good by its code alone; anything else
// the outbox sends again.
func TestStreamRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"over the stream's limit", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum}, true},
		{"full, discard new", &jetstream.APIError{Code: 503, ErrorCode: 10077}, true},
		{"expected stream", &jetstream.APIError{Code: 400, ErrorCode: 10060}, true},
		{"expected last msg id", &jetstream.APIError{Code: 400, ErrorCode: 10070}, true},
		{"wrong last sequence", fmt.Errorf("publish: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}), true},
		{"wrong last sequence, replicated", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}, true},
		{"no leader", &jetstream.APIError{Code: 503, ErrorCode: 10008}, false},
		{"duplicate in process", &jetstream.APIError{Code: 409, ErrorCode: ErrCodeDuplicateInProcess}, false},
		{"timeout", nats.ErrTimeout, false},
		{"no responders", nats.ErrNoResponders, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StreamRefused(tc.err); got != tc.want {
				t.Errorf("StreamRefused(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	for _, err := range []error{nats.ErrMaxPayload, fmt.Errorf("send: %w", nats.ErrBadHeaderMsg), nats.ErrBadSubject} {
		if !Unsendable(err) {
			t.Errorf("Unsendable(%v) = false", err)
		}
	}
	if Unsendable(nats.ErrConnectionClosed) {
		t.Error("a lost connection taken as unsendable")
	}
}
