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
