package natsclient_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Closed is final (defect 5): a Connect whose short deadline ends while
// Close runs must not move the state out of Closed. Before, the withdrawn
// Connect was handled after closing began, and subscribers saw Closed →
// Disconnected and Publish returned ErrNotConnected instead of ErrClosed.
// The race is run many times, half against a running server (the Connect
// may succeed) and half against one that is down (it cannot).
func TestClosedIsFinalWhenConnectRacesClose(t *testing.T) {
	srv := natstest.NewServer(t)
	down := natstest.NewServer(t)
	down.Stop()
	const rounds = 200
	for i := range rounds {
		url := srv.URL()
		if i%2 == 1 {
			url = down.URL()
		}
		c, err := natsclient.NewClient(url, fast()...)
		if err != nil {
			t.Fatal(err)
		}
		events := c.StateChanges(context.Background())
		deadline := time.Duration(rand.Int64N(int64(2 * time.Millisecond)))
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		var wg sync.WaitGroup
		var connectErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			connectErr = c.Connect(ctx)
		}()
		go func() {
			defer wg.Done()
			if err := c.Close(context.Background()); err != nil {
				t.Errorf("round %d: Close: %v", i, err)
			}
		}()
		wg.Wait()
		cancel()
		if connectErr != nil && !errors.Is(connectErr, natsclient.ErrClosed) && !errors.Is(connectErr, context.DeadlineExceeded) {
			t.Fatalf("round %d: Connect = %v, want nil, ErrClosed or its deadline", i, connectErr)
		}
		if st := c.State(); st != natsclient.StateClosed {
			t.Fatalf("round %d: State after Close = %v", i, st)
		}
		if err := c.Publish(context.Background(), "a", nil); !errors.Is(err, natsclient.ErrClosed) {
			t.Fatalf("round %d: Publish after Close = %v, want ErrClosed", i, err)
		}
		closedSeen := false
		for ev := range events {
			if closedSeen {
				t.Fatalf("round %d: event after Closed: %v -> %v", i, ev.From, ev.To)
			}
			closedSeen = ev.To == natsclient.StateClosed
		}
		if !closedSeen {
			t.Fatalf("round %d: the last event was not the change to Closed", i)
		}
	}
}

// Between connections (nats.go gave its connection up and the supervisor
// is dialling a new one) a call fails at once with an error matching
// ErrNotConnected that says so, and the state is Reconnecting; once the
// server is back the same client works again (defect 9).
func TestNotConnectedBetweenConnections(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(
		natsclient.WithMaxReconnects(0), // nats.go gives up at once
		natsclient.WithCircuitBreakerThreshold(1000),
	))
	c, ctx := tc.Client, natstest.Context(t, waitTimeout)
	events := c.StateChanges(ctx)
	tc.Server.Stop()
	natstest.Await(t, events, waitTimeout, "reconnecting", natstest.ToState(natsclient.StateReconnecting))
	var err error
	natstest.Eventually(t, waitTimeout, "a call between connections", func() bool {
		err = c.Publish(ctx, "between", nil)
		return errors.Is(err, natsclient.ErrNotConnected)
	})
	if errors.Is(err, natsclient.ErrCircuitOpen) || c.Stats().Connections != 1 {
		t.Fatalf("Publish between connections = %v (stats %+v), want ErrNotConnected alone", err, c.Stats())
	}
	if !strings.Contains(err.Error(), "new one is being dialled") {
		t.Fatalf("Publish between connections = %v: does not say a new connection is coming", err)
	}
	if st := c.State(); st != natsclient.StateReconnecting {
		t.Fatalf("State between connections = %v, want reconnecting", st)
	}
	tc.Server.Start()
	natstest.Await(t, events, waitTimeout, "connected again", natstest.ToState(natsclient.StateConnected))
	if err := c.Publish(ctx, "after", nil); err != nil {
		t.Fatalf("Publish after the new connection: %v", err)
	}
	if n := c.Stats().Connections; n != 2 {
		t.Fatalf("Connections = %d, want 2", n)
	}
}

// Close called from a message handler returns once the other
// subscriptions have drained, without waiting for the calling handler, and
// the client's goroutines end once that handler has returned (defect 4).
// Before, the drain waited for the handler that was waiting for the drain:
// Close never returned with context.Background.
func TestCloseFromMessageHandler(t *testing.T) {
	tc := natstest.NewTestClient(t)
	closed := make(chan struct{})
	c, err := natsclient.NewClient(tc.URL, fast(natsclient.WithClosedCallback(func() { close(closed) }))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Context(t, waitTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// The other subscription holds queued messages when Close begins: its
	// handler waits until the closing handler is running.
	const queued = 20
	closing := make(chan struct{})
	var handled atomic.Int32
	if _, err := c.Subscribe("work", func(*nats.Msg) {
		<-closing
		handled.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	var handledAtReturn int32
	if _, err := c.Subscribe("stop", func(*nats.Msg) {
		close(closing)
		err := c.Close(context.Background())
		handledAtReturn = handled.Load()
		result <- err
	}); err != nil {
		t.Fatal(err)
	}
	for range queued {
		if err := c.Publish(ctx, "work", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "stop", nil); err != nil {
		t.Fatal(err)
	}
	if err := natstest.Receive(t, result, waitTimeout, "Close's return in the handler"); err != nil {
		t.Fatalf("Close from a handler = %v", err)
	}
	if handledAtReturn != queued {
		t.Fatalf("Close returned when %d of %d queued messages were handled: the other subscription had not drained", handledAtReturn, queued)
	}
	natstest.Receive(t, closed, waitTimeout, "the closed callback, once the handler returned")
	if st := c.State(); st != natsclient.StateClosed {
		t.Fatalf("State = %v", st)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close after Close from a handler = %v", err)
	}
}

// A client allowed only to publish is connected like any other: the probe
// that proves a new connection needs no permission. Embedded only: the
// container configuration cannot express permissions.
func TestPublishOnlyClientConnects(t *testing.T) {
	srv := natstest.NewServer(t, natstest.WithBackend(natstest.Embedded),
		natstest.WithServerOptions(func(o *server.Options) {
			o.Users = []*server.User{{Username: "sensor", Password: "s3cret", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"telemetry.>"}},
				Subscribe: &server.SubjectPermission{Deny: []string{">"}},
			}}}
		}))
	c := newClient(t, srv.URL(), fast(natsclient.WithUserInfo("sensor", "s3cret"))...)
	ctx := natstest.Context(t, waitTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect as a publish-only user: %v", err)
	}
	if err := c.Publish(ctx, "telemetry.temp", []byte("21.5")); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.State != natsclient.StateConnected || st.Breaker != natsclient.BreakerClosed || st.ConsecutiveFailures != 0 {
		t.Fatalf("publish-only client: %+v", st)
	}
}
