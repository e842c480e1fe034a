package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient"
)

// TestClient is a connected natsclient.Client and the server behind it.
type TestClient struct {
	Client *natsclient.Client
	Server *Server
	URL    string
	t      testing.TB
}

// Defaults the harness gives its clients, so that tests of reconnection run
// in milliseconds. WithClientOptions overrides them.
const (
	testReconnectWait = 25 * time.Millisecond
	testMaxBackoff    = 500 * time.Millisecond
	testTimeout       = 2 * time.Second
)

// On the container backend a restart keeps the server away for a second or
// more, not milliseconds; the embedded defaults would make the client retry
// (two state events per try) often enough to overflow a state subscriber's
// buffer during one outage. These keep the number of tries per outage about
// what it is on the embedded backend.
const (
	containerReconnectWait = 100 * time.Millisecond
	containerMaxBackoff    = time.Second
)

// NewTestClient starts a server (see NewServer) and returns a client connected
// to it. Both are closed when the test ends; Close closes the client earlier.
func NewTestClient(t testing.TB, opts ...Option) *TestClient {
	t.Helper()
	return ConnectTestClient(t, NewServer(t, opts...), newConfig(opts).clientOptions...)
}

// ConnectTestClient returns a client connected to srv, a server the test
// started already (a leaf node, a member of a cluster), with the harness's
// fast reconnect settings; opts are applied after them. The client is closed
// when the test ends; Close closes it earlier.
func ConnectTestClient(t testing.TB, srv *Server, opts ...natsclient.Option) *TestClient {
	t.Helper()
	wait, backoff := testReconnectWait, testMaxBackoff
	if srv.Backend() == Container {
		wait, backoff = containerReconnectWait, containerMaxBackoff
	}
	clientOpts := append([]natsclient.Option{
		natsclient.WithReconnectWait(wait),
		natsclient.WithMaxBackoff(backoff),
		natsclient.WithTimeout(testTimeout),
		natsclient.WithMaxReconnects(-1),
	}, opts...)
	client, err := natsclient.NewClient(srv.URL(), clientOpts...)
	if err != nil {
		t.Fatalf("natstest: new client: %v", err)
	}
	tc := &TestClient{Client: client, Server: srv, URL: srv.URL(), t: t}
	t.Cleanup(tc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx); err != nil {
		t.Fatalf("natstest: connect to %s: %v", srv.URL(), err)
	}
	return tc
}

// Close closes the client, waiting up to 10s for its drain. Calling it again
// does nothing.
func (tc *TestClient) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.Client.Close(ctx); err != nil {
		tc.t.Errorf("natstest: close client: %v", err)
	}
}

// RestartServer stops the client's server, waits for the client to say it is
// reconnecting, starts the server again and returns once the client has
// announced it is connected: the client has lost its connection and made a
// new one. It fails the test if either announcement takes longer than
// timeout.
func (tc *TestClient) RestartServer(timeout time.Duration) {
	tc.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := tc.Client.StateChanges(ctx)
	tc.Server.Stop()
	Await(tc.t, events, timeout, "the client reconnecting", ToState(natsclient.StateReconnecting))
	tc.Server.Start()
	Await(tc.t, events, timeout, "the client connected again", ToState(natsclient.StateConnected))
}
