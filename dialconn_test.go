package natsclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// DialConn gives a connection of the caller's own: the client's servers and
// nats.go options, the caller's options on top, none of the user's
// callbacks, and an error once the client is closed.
func TestDialConn(t *testing.T) {
	userDisconnects := make(chan struct{}, 16)
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(
		natsclient.WithName("dialconn"),
		natsclient.WithNATSOptions(nats.DisconnectErrHandler(func(*nats.Conn, error) {
			userDisconnects <- struct{}{}
		}))))

	closed := make(chan struct{}, 1)
	nc, err := tc.Client.DialConn(nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { closed <- struct{}{} }))
	if err != nil {
		t.Fatalf("DialConn: %v", err)
	}
	if nc.Opts.Name != "dialconn" || nc.Opts.AllowReconnect || nc.Opts.DisconnectedErrCB != nil {
		t.Errorf("options: name %q, reconnect %v, user disconnect callback set %v; want the client's name, the caller's NoReconnect, no user callback",
			nc.Opts.Name, nc.Opts.AllowReconnect, nc.Opts.DisconnectedErrCB != nil)
	}
	if err := nc.Publish("dialconn.x", []byte("x")); err != nil {
		t.Fatalf("publish on the dialled connection: %v", err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush on the dialled connection: %v", err)
	}
	tc.Server.CutConnections()
	natstest.Await(t, closed, 30*time.Second, "the dialled connection closing after a cut", nil)
	nc.Close()

	if _, err := tc.Client.DialConn(nil); !errors.Is(err, natsclient.ErrInvalidOption) {
		t.Errorf("DialConn(nil): %v, want ErrInvalidOption", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.Client.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Client.DialConn(); !errors.Is(err, natsclient.ErrClosed) {
		t.Errorf("DialConn after Close: %v, want ErrClosed", err)
	}
}

// A server that accepts the connection and never answers (a frozen link)
// would hold DialConn for the client's timeout, here 30 s: DialConnContext
// ends with the caller's ctx, and with Close.
func TestDialConnContextEndsWithCtxAndClose(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(natsclient.WithTimeout(30*time.Second)))
	if _, err := tc.Client.DialConnContext(nil, nats.NoReconnect()); !errors.Is(err, natsclient.ErrInvalidArgument) { //nolint:staticcheck // the nil ctx is the point
		t.Errorf("DialConnContext(nil): %v, want ErrInvalidArgument", err)
	}
	tc.Server.Freeze()
	defer tc.Server.Thaw()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if nc, err := tc.Client.DialConnContext(ctx, nats.NoReconnect()); !errors.Is(err, context.DeadlineExceeded) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("DialConnContext to a frozen server: %v, want the ctx's deadline", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("DialConnContext returned after %v: it waited for the handshake timeout, not for its ctx", waited.Round(time.Millisecond))
	}

	done := make(chan error, 1)
	go func() {
		nc, err := tc.Client.DialConnContext(context.Background(), nats.NoReconnect())
		if nc != nil {
			nc.Close()
		}
		done <- err
	}()
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer closeCancel()
	_ = tc.Client.Close(closeCtx) // the frozen server cannot confirm the drain
	err := natstest.Await(t, done, 10*time.Second, "DialConnContext ending with Close", nil)
	if !errors.Is(err, natsclient.ErrClosed) {
		t.Errorf("DialConnContext during Close: %v, want ErrClosed", err)
	}
}
