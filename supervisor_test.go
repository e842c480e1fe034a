package natsclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

// fast are client options that make reconnection tests run in milliseconds.
func fast(extra ...natsclient.Option) []natsclient.Option {
	return append([]natsclient.Option{
		natsclient.WithReconnectWait(20 * time.Millisecond),
		natsclient.WithMaxBackoff(200 * time.Millisecond),
		natsclient.WithTimeout(time.Second),
	}, extra...)
}

func newClient(t *testing.T, url string, opts ...natsclient.Option) *natsclient.Client {
	t.Helper()
	c, err := natsclient.NewClient(url, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestPublishSubscribeRequest(t *testing.T) {
	tc := natstest.NewTestClient(t)
	ctx := natstest.Context(t, waitTimeout)
	got := make(chan *nats.Msg, 1)
	if _, err := tc.Client.Subscribe("orders.*", func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := tc.Client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tc.Client.Publish(ctx, "orders.new", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if m := natstest.Receive(t, got, waitTimeout, "message"); string(m.Data) != "one" || m.Subject != "orders.new" {
		t.Fatalf("got %q on %q", m.Data, m.Subject)
	}

	msg := nats.NewMsg("orders.hdr")
	msg.Header.Set("Trace", "abc")
	msg.Header.Set("Tenant", "t1")
	msg.Data = []byte("two")
	if err := tc.Client.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if m := natstest.Receive(t, got, waitTimeout, "message with headers"); m.Header.Get("Trace") != "abc" || m.Header.Get("Tenant") != "t1" {
		t.Fatalf("headers lost: %v", m.Header)
	}

	if _, err := tc.Client.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("re:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	reply, err := tc.Client.Request(ctx, "echo", []byte("hi"))
	if err != nil || string(reply.Data) != "re:hi" {
		t.Fatalf("Request = %v, %v", reply, err)
	}
	// A context without a deadline is bounded by the client's timeout.
	if reply, err = tc.Client.Request(context.Background(), "echo", []byte("bg")); err != nil || string(reply.Data) != "re:bg" {
		t.Fatalf("Request(Background) = %v, %v", reply, err)
	}
	st := tc.Client.Stats()
	if st.OutMsgs < 4 || st.InMsgs < 2 || st.State != natsclient.StateConnected {
		t.Fatalf("stats not counted: %+v", st)
	}
}

func TestQueueSubscribeAndUnsubscribe(t *testing.T) {
	tc := natstest.NewTestClient(t)
	ctx := natstest.Context(t, waitTimeout)
	var a, b atomic.Int64
	all := make(chan struct{}, 100)
	handler := func(n *atomic.Int64) nats.MsgHandler {
		return func(*nats.Msg) { n.Add(1); all <- struct{}{} }
	}
	subA, err := tc.Client.QueueSubscribe("work", "workers", handler(&a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Client.QueueSubscribe("work", "workers", handler(&b)); err != nil {
		t.Fatal(err)
	}
	if err := tc.Client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := tc.Client.Publish(ctx, "work", nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		natstest.Receive(t, all, waitTimeout, "queued message")
	}
	if a.Load()+b.Load() != 50 {
		t.Fatalf("queue group delivered %d+%d messages, want 50 in all", a.Load(), b.Load())
	}
	if err := subA.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := subA.Unsubscribe(); !errors.Is(err, nats.ErrBadSubscription) {
		t.Fatalf("second Unsubscribe = %v, want ErrBadSubscription", err)
	}
	before := a.Load()
	for range 10 {
		if err := tc.Client.Publish(ctx, "work", nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		natstest.Receive(t, all, waitTimeout, "message after unsubscribe")
	}
	if a.Load() != before {
		t.Fatalf("unsubscribed handler still received %d messages", a.Load()-before)
	}
}

func TestConnectTwiceMakesOneConnection(t *testing.T) {
	tc := natstest.NewTestClient(t)
	if err := tc.Client.Connect(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatalf("second Connect: %v", err)
	}
	if n := tc.Client.Stats().Connections; n != 1 {
		t.Fatalf("Connections = %d after two Connects, want 1", n)
	}
	if n := tc.Server.NumClients(); n != 1 {
		t.Fatalf("server sees %d clients, want 1", n)
	}
}

func TestConnectRetriesUntilServerIsUp(t *testing.T) {
	srv := natstest.NewServer(t)
	srv.Stop()
	c := newClient(t, srv.URL(), fast(natsclient.WithCircuitBreakerThreshold(100))...)
	done := make(chan error, 1)
	go func() { done <- c.Connect(natstest.Context(t, waitTimeout)) }()
	natstest.Eventually(t, waitTimeout, "two failed dials", func() bool { return c.Stats().ConsecutiveFailures >= 2 })
	if c.State() != natsclient.StateConnecting {
		t.Fatalf("state while dialling = %v, want connecting", c.State())
	}
	srv.Start()
	if err := natstest.Receive(t, done, waitTimeout, "Connect result"); err != nil {
		t.Fatalf("Connect after server came up: %v", err)
	}
	if c.State() != natsclient.StateConnected || c.Stats().ConsecutiveFailures != 0 {
		t.Fatalf("after connect: %+v", c.Stats())
	}
}

func TestConnectGivesUpWhenContextEnds(t *testing.T) {
	srv := natstest.NewServer(t)
	srv.Stop()
	c := newClient(t, srv.URL(), fast()...)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Connect(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "last attempt") {
		t.Fatalf("Connect error does not say what the last attempt met: %v", err)
	}
	natstest.Eventually(t, waitTimeout, "state back to disconnected", func() bool { return c.State() == natsclient.StateDisconnected })
	if err := c.Publish(context.Background(), "x", nil); err == nil {
		t.Fatal("Publish on an unconnected client succeeded")
	}
}

func TestConnectPermanentErrorReturnsAtOnce(t *testing.T) {
	srv := natstest.NewServer(t, natstest.WithServerOptions(func(o *server.Options) {
		o.Username, o.Password = "app", "secret"
	}))
	c := newClient(t, srv.URL(), fast(natsclient.WithUserInfo("app", "wrong"))...)
	start := time.Now()
	err := c.Connect(natstest.Context(t, waitTimeout))
	if !errors.Is(err, natsclient.ErrPermanent) || !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("Connect with a wrong password = %v, want ErrPermanent and ErrAuthorization", err)
	}
	if !strings.Contains(err.Error(), "authorization") {
		t.Fatalf("error does not say authorization: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("permanent error took %v: it was retried", d)
	}
	st := c.Stats()
	if st.Breaker != natsclient.BreakerClosed || st.Connections != 0 || st.State != natsclient.StateDisconnected {
		t.Fatalf("after a permanent error: %+v", st)
	}

	good := newClient(t, srv.URL(), fast(natsclient.WithUserInfo("app", "secret"))...)
	if err := good.Connect(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatalf("Connect with the right password: %v", err)
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	srv := natstest.NewServer(t)
	ignore := goleak.IgnoreCurrent()
	var closedCalls atomic.Int32
	c, err := natsclient.NewClient(srv.URL(), fast(natsclient.WithClosedCallback(func() { closedCalls.Add(1) }))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Context(t, waitTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	events := c.StateChanges(ctx)
	sub, err := c.Subscribe("a", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := closedCalls.Load(); n != 1 {
		t.Fatalf("closed callback ran %d times, want 1", n)
	}
	natstest.Await(t, events, waitTimeout, "closed event", natstest.ToState(natsclient.StateClosed))
	if _, ok := <-events; ok {
		t.Fatal("state channel still open after Close")
	}
	checks := map[string]error{
		"Publish":     c.Publish(ctx, "a", nil),
		"Connect":     c.Connect(ctx),
		"Flush":       c.Flush(ctx),
		"Unsubscribe": sub.Unsubscribe(),
	}
	_, checks["Request"] = c.Request(ctx, "a", nil)
	_, checks["Subscribe"] = c.Subscribe("a", func(*nats.Msg) {})
	for name, err := range checks {
		if !errors.Is(err, natsclient.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if _, ok := <-c.StateChanges(ctx); ok {
		t.Fatal("StateChanges after Close gave an open channel")
	}
	goleak.VerifyNone(t, ignore)
}

func TestCloseWithoutConnect(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c, err := natsclient.NewClient("nats://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), "a", nil); !errors.Is(err, natsclient.ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	goleak.VerifyNone(t, ignore)
}

func TestCallsBeforeConnect(t *testing.T) {
	c := newClient(t, "nats://127.0.0.1:1")
	ctx := context.Background()
	if err := c.Publish(ctx, "a", nil); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("Publish before Connect = %v", err)
	}
	if _, err := c.Subscribe("a", func(*nats.Msg) {}); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("Subscribe before Connect = %v", err)
	}
	if c.State() != natsclient.StateDisconnected {
		t.Fatalf("State = %v", c.State())
	}
}

func TestServerRestartKeepsSubscriptions(t *testing.T) {
	var reconnects atomic.Int32
	var disconnects atomic.Int32
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(
		natsclient.WithReconnectCallback(func() { reconnects.Add(1) }),
		natsclient.WithDisconnectCallback(func(error) { disconnects.Add(1) }),
	))
	ctx := natstest.Context(t, waitTimeout)
	got := make(chan string, 10)
	if _, err := tc.Client.Subscribe("telemetry", func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	events := tc.Client.StateChanges(ctx)
	tc.Server.Restart()
	ev := natstest.Await(t, events, waitTimeout, "reconnecting", natstest.ToState(natsclient.StateReconnecting))
	if ev.From != natsclient.StateConnected || ev.Err == nil {
		t.Fatalf("reconnecting event = %+v, want from connected with a cause", ev)
	}
	natstest.Await(t, events, waitTimeout, "connected again", natstest.ToState(natsclient.StateConnected))
	if err := tc.Client.Publish(ctx, "telemetry", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := natstest.Receive(t, got, waitTimeout, "message after restart"); m != "after" {
		t.Fatalf("got %q", m)
	}
	natstest.Eventually(t, waitTimeout, "reconnect callback", func() bool { return reconnects.Load() >= 1 })
	if n, d := reconnects.Load(), disconnects.Load(); n != 1 || d != 1 {
		t.Fatalf("reconnect callback ran %d times, disconnect %d, want 1 and 1", n, d)
	}
	if st := tc.Client.Stats(); st.Reconnects != 1 || st.Connections != 1 {
		t.Fatalf("stats after one restart: %+v", st)
	}
}

func TestNewConnectionAfterNATSGivesUp(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(natsclient.WithMaxReconnects(0)))
	ctx := natstest.Context(t, waitTimeout)
	got := make(chan string, 10)
	if _, err := tc.Client.Subscribe("a.>", func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Client.QueueSubscribe("b", "q", func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	tc.RestartServer(waitTimeout)
	if n := tc.Client.Stats().Connections; n != 2 {
		t.Fatalf("Connections = %d, want 2 (a new one dialled)", n)
	}
	for _, subj := range []string{"a.x", "b"} {
		if err := tc.Client.Publish(ctx, subj, []byte(subj)); err != nil {
			t.Fatal(err)
		}
		if m := natstest.Receive(t, got, waitTimeout, "message on "+subj); m != subj {
			t.Fatalf("got %q, want %q", m, subj)
		}
	}
}

func TestBreakerOpensFailsFastAndRecoversByItself(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(3)))
	ctx := natstest.Context(t, waitTimeout)
	events := tc.Client.StateChanges(ctx)
	tc.Server.Stop()
	open := natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))
	if open.Err == nil {
		t.Fatal("breaker-open event has no cause")
	}
	err := tc.Client.Publish(ctx, "a", []byte("x"))
	if !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("Publish while open = %v, want ErrCircuitOpen", err)
	}
	var coe *natsclient.CircuitOpenError
	if !errors.As(err, &coe) || coe.Cause == nil || errors.Unwrap(err) == nil {
		t.Fatalf("open-circuit error does not wrap its cause: %#v", err)
	}
	if _, err := tc.Client.Request(ctx, "a", nil); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("Request while open = %v", err)
	}
	if st := tc.Client.Stats(); st.BreakerTrips < 1 {
		t.Fatalf("trips not counted: %+v", st)
	}
	// The breaker keeps probing at its interval; with the server still down
	// the probe fails and it opens again.
	natstest.Await(t, events, waitTimeout, "half-open probe", natstest.BreakerIs(natsclient.BreakerHalfOpen))
	natstest.Await(t, events, waitTimeout, "reopened after a failed probe", natstest.BreakerIs(natsclient.BreakerOpen))

	tc.Server.Start()
	natstest.Await(t, events, waitTimeout, "breaker closed", func(ev natsclient.StateChange) bool {
		return ev.Breaker == natsclient.BreakerClosed && ev.To == natsclient.StateConnected
	})
	if err := tc.Client.Publish(ctx, "a", []byte("x")); err != nil {
		t.Fatalf("Publish after recovery: %v", err)
	}
}

func TestCallerMistakesDoNotTripTheBreaker(t *testing.T) {
	tc := natstest.NewTestClient(t,
		natstest.WithServerOptions(func(o *server.Options) { o.MaxPayload = 1024 }),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	c := tc.Client
	ctx := natstest.Context(t, waitTimeout)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, subject := range []string{"", "a b", "a..b", ".a", "a.", "a.*", ">", "a\tb"} {
		if err := c.Publish(ctx, subject, nil); !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, nats.ErrBadSubject) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidArgument", subject, err)
		}
	}
	//lint:ignore SA1012 a nil context is the bad input under test
	if err := c.Publish(nil, "a", nil); !errors.Is(err, natsclient.ErrInvalidArgument) { //nolint:staticcheck
		t.Errorf("Publish(nil ctx) = %v", err)
	}
	if err := c.Publish(cancelled, "a", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish(cancelled) = %v", err)
	}
	if err := c.PublishMsg(ctx, nil); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Errorf("PublishMsg(nil) = %v", err)
	}
	err := c.Publish(ctx, "big", make([]byte, 2048))
	if !errors.Is(err, nats.ErrMaxPayload) || !strings.Contains(err.Error(), "1024") {
		t.Errorf("oversized Publish = %v, want ErrMaxPayload naming the limit", err)
	}
	if _, err := c.Request(ctx, "nobody.home", nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("Request without responders = %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := c.Subscribe("slow", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(short, "slow", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Request to a silent responder = %v", err)
	}
	if _, err := c.Subscribe("a b", func(*nats.Msg) {}); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Errorf("Subscribe(invalid) = %v", err)
	}
	if _, err := c.Subscribe("a", nil); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Errorf("Subscribe(nil handler) = %v", err)
	}
	if _, err := c.QueueSubscribe("a", "", func(*nats.Msg) {}); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Errorf("QueueSubscribe(empty queue) = %v", err)
	}
	// Failure reports travel asynchronously: a flush round trip after them
	// makes sure the supervisor would have counted any.
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe("sync", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.ConsecutiveFailures != 0 || st.Breaker != natsclient.BreakerClosed || st.BreakerTrips != 0 {
		t.Fatalf("caller mistakes counted against the breaker: %+v", st)
	}
}

func TestCallbacksMayCallBackIntoTheClient(t *testing.T) {
	var client atomic.Pointer[natsclient.Client]
	c := func() *natsclient.Client { return client.Load() }
	results := make(chan string, 10)
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(
		natsclient.WithDisconnectCallback(func(error) {
			results <- "disconnect:" + c().State().String()
			_ = c().Publish(context.Background(), "from.callback", nil)
		}),
		natsclient.WithReconnectCallback(func() {
			results <- "reconnect:" + c().State().String()
			// Close from inside a callback must not deadlock.
			results <- "close:" + errString(c().Close(context.Background()))
		}),
		natsclient.WithClosedCallback(func() { results <- "closed:" + c().State().String() }),
	))
	client.Store(tc.Client)
	tc.Server.Restart()
	want := []string{"disconnect:reconnecting", "reconnect:connected", "close:nil", "closed:closed"}
	for _, w := range want {
		if got := natstest.Receive(t, results, waitTimeout, w); got != w {
			t.Fatalf("callback said %q, want %q", got, w)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func TestSlowStateSubscriberNeverBlocksAndSeesThePresent(t *testing.T) {
	tc := natstest.NewTestClient(t)
	// Not testContext: a dozen container restarts outlast its deadline, and
	// each wait below has its own.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	neverRead := tc.Client.StateChanges(ctx)
	events := tc.Client.StateChanges(ctx)
	const restarts = 10 // two events each at least: more than a subscriber's buffer of 16
	for range restarts {
		tc.Server.Restart()
		// Only the return to connected is awaited: this reader can fall
		// behind too (a container restart is slow and the breaker moves
		// meanwhile), and then it sees the present, not each step.
		natstest.Await(t, events, waitTimeout, "connected", natstest.ToState(natsclient.StateConnected))
	}
	ev := natstest.Receive(t, neverRead, waitTimeout, "first event for the slow subscriber")
	if ev.To != natsclient.StateConnected || ev.Missed == 0 {
		t.Fatalf("slow subscriber's next read = %+v, want the present (connected) with Missed > 0", ev)
	}
	if ev.Missed+1 < 2*restarts {
		t.Fatalf("Missed = %d, want at least %d", ev.Missed, 2*restarts-1)
	}
}

func TestStateChangesClosesWhenContextEnds(t *testing.T) {
	tc := natstest.NewTestClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	events := tc.Client.StateChanges(ctx)
	cancel()
	select {
	case _, ok := <-events:
		if ok {
			t.Fatal("unexpected event")
		}
	case <-time.After(waitTimeout):
		t.Fatal("state channel not closed after its context ended")
	}
}

func TestInvalidOptionsAreNamed(t *testing.T) {
	cases := map[string]struct {
		url  string
		opts []natsclient.Option
	}{
		"url":                         {url: " , "},
		"WithCircuitBreakerThreshold": {opts: []natsclient.Option{natsclient.WithCircuitBreakerThreshold(0)}},
		"WithReconnectWait":           {opts: []natsclient.Option{natsclient.WithReconnectWait(-time.Second)}},
		"WithTimeout":                 {opts: []natsclient.Option{natsclient.WithTimeout(0)}},
		"WithMaxReconnects":           {opts: []natsclient.Option{natsclient.WithMaxReconnects(-2)}},
		"WithMaxBackoff":              {opts: []natsclient.Option{natsclient.WithReconnectWait(time.Minute), natsclient.WithMaxBackoff(time.Second)}},
		"WithPingInterval":            {opts: []natsclient.Option{natsclient.WithPingInterval(-1)}},
		"WithTLSConfig":               {opts: []natsclient.Option{natsclient.WithTLSConfig(nil)}},
		"WithNKeyFile":                {opts: []natsclient.Option{natsclient.WithNKeyFile("/does/not/exist")}},
		"WithLogger":                  {opts: []natsclient.Option{natsclient.WithLogger(nil)}},
	}
	for name, tc := range cases {
		url := tc.url
		if url == "" {
			url = "nats://127.0.0.1:4222"
		}
		_, err := natsclient.NewClient(url, tc.opts...)
		if !errors.Is(err, natsclient.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: NewClient = %v, want ErrInvalidOption naming %s", name, err, name)
		}
	}
	if _, err := natsclient.NewClient("nats://a:4222, nats://b:4222", natsclient.WithMaxReconnects(-1)); err != nil {
		t.Errorf("a server list and -1 reconnects are valid: %v", err)
	}
}

func TestCloseDrainsPendingMessages(t *testing.T) {
	tc := natstest.NewTestClient(t)
	ctx := natstest.Context(t, waitTimeout)
	var handled atomic.Int32
	release := make(chan struct{})
	if _, err := tc.Client.Subscribe("work", func(*nats.Msg) {
		<-release // hold the handler so messages queue up in the subscription
		handled.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for range n {
		if err := tc.Client.Publish(ctx, "work", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.Client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- tc.Client.Close(ctx) }()
	close(release)
	if err := natstest.Receive(t, closed, waitTimeout, "Close result"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := handled.Load(); got != n {
		t.Fatalf("Close returned after %d of %d queued messages were handled: it did not drain", got, n)
	}
}

func TestCloseDuringConnectAttempts(t *testing.T) {
	srv := natstest.NewServer(t)
	srv.Stop()
	ignore := goleak.IgnoreCurrent()
	c, err := natsclient.NewClient(srv.URL(), fast()...)
	if err != nil {
		t.Fatal(err)
	}
	connectErr := make(chan error, 1)
	go func() { connectErr <- c.Connect(context.Background()) }()
	natstest.Eventually(t, waitTimeout, "a failed dial", func() bool { return c.Stats().ConsecutiveFailures >= 1 })
	if err := c.Close(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := natstest.Receive(t, connectErr, waitTimeout, "Connect result"); !errors.Is(err, natsclient.ErrClosed) {
		t.Fatalf("Connect interrupted by Close = %v, want ErrClosed", err)
	}
	goleak.VerifyNone(t, ignore)
}

// lineLogger collects log lines; it is a natsclient.Logger.
type lineLogger chan string

func (l lineLogger) Printf(format string, v ...any) {
	select {
	case l <- fmt.Sprintf(format, v...):
	default: // a full buffer drops lines rather than block the client
	}
}

func TestNATSOptionHandlersRunBesideTheClients(t *testing.T) {
	userDisconnects := make(chan error, 4)
	logs := make(lineLogger, 256)
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(
		natsclient.WithLogger(logs),
		natsclient.WithNATSOptions(nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { userDisconnects <- err })),
	))
	events := tc.Client.StateChanges(natstest.Context(t, waitTimeout))
	tc.Server.Restart()
	natstest.Receive(t, userDisconnects, waitTimeout, "the user's nats.go disconnect handler")
	// The client's own handler still drives the supervisor.
	natstest.Await(t, events, waitTimeout, "reconnecting", natstest.ToState(natsclient.StateReconnecting))
	natstest.Await(t, events, waitTimeout, "connected", natstest.ToState(natsclient.StateConnected))
	for {
		line := natstest.Receive(t, logs, waitTimeout, "a log line about the reconnect")
		if strings.Contains(line, "natsclient: ") && strings.Contains(line, "state=connected") {
			break
		}
	}
}
