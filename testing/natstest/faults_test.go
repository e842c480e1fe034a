package natstest_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

// conn is a raw nats.go connection whose connection events arrive on
// channels, closed when the test ends.
type conn struct {
	*nats.Conn
	disconnected chan error
	reconnected  chan struct{}
}

func dial(t *testing.T, url string, opts ...nats.Option) *conn {
	t.Helper()
	c := &conn{disconnected: make(chan error, 16), reconnected: make(chan struct{}, 16)}
	opts = append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			select {
			case c.disconnected <- err:
			default:
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case c.reconnected <- struct{}{}:
			default:
			}
		}),
	}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	c.Conn = nc
	t.Cleanup(nc.Close)
	return c
}

// quiet asserts that nothing arrives on ch for d: the one place these tests
// must wait for time itself, because what they assert is an absence.
func quiet[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s arrived while it should not: %v", what, v)
	case <-time.After(d):
	}
}

// echo answers every request on subject through a connection that bypasses
// the proxy, so that faults touch only the client under test.
func echo(t *testing.T, srv *natstest.Server, subject string) <-chan *nats.Msg {
	t.Helper()
	seen := make(chan *nats.Msg, 64)
	obs := dial(t, srv.DirectURL())
	if _, err := obs.Subscribe(subject, func(m *nats.Msg) {
		seen <- m
		_ = m.Respond(m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestFreezeIsDetectedByPingsAndThawRecovers(t *testing.T) {
	srv := natstest.NewServer(t)
	c := dial(t, srv.URL(), nats.PingInterval(50*time.Millisecond), nats.MaxPingsOutstanding(2))
	srv.Freeze()
	start := time.Now()
	err := natstest.Receive(t, c.disconnected, wait, "disconnect while frozen")
	if !errors.Is(err, nats.ErrStaleConnection) {
		t.Fatalf("disconnect error = %v, want %v", err, nats.ErrStaleConnection)
	}
	// Detection takes PingInterval × (MaxPingsOut + 1), give or take a tick.
	if took := time.Since(start); took > time.Second {
		t.Fatalf("stale connection detected after %v, want about 150ms", took)
	}
	// While frozen, reconnect attempts reach the proxy but hear no INFO.
	quiet(t, c.reconnected, 200*time.Millisecond, "reconnect while frozen")
	srv.Thaw()
	natstest.Receive(t, c.reconnected, wait, "reconnect after thaw")
	echo(t, srv, "ping")
	if _, err := c.Request("ping", []byte("x"), wait); err != nil {
		t.Fatalf("request after thaw: %v", err)
	}
}

func TestFreezeHoldsTrafficAndThawDeliversItInOrder(t *testing.T) {
	srv := natstest.NewServer(t)
	sub := dial(t, srv.URL())
	got, err := sub.SubscribeSync("held")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, srv.URL())
	srv.Freeze()
	const n = 200
	for i := range n {
		if err := pub.Publish("held", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- pub.FlushTimeout(wait) }()
	quiet(t, flushed, 100*time.Millisecond, "flush through a frozen proxy")
	if m, err := got.NextMsg(10 * time.Millisecond); err == nil {
		t.Fatalf("message %q delivered while frozen", m.Data)
	}
	srv.Thaw()
	if err := natstest.Receive(t, flushed, wait, "flush after thaw"); err != nil {
		t.Fatalf("flush after thaw: %v", err)
	}
	for i := range n {
		m, err := got.NextMsg(wait)
		if err != nil {
			t.Fatalf("message %d after thaw: %v", i, err)
		}
		if want := fmt.Sprint(i); string(m.Data) != want {
			t.Fatalf("message %d = %q, want %q", i, m.Data, want)
		}
	}
}

func TestFreezeRepliesLosesTheAnswerNotTheRequest(t *testing.T) {
	srv := natstest.NewServer(t)
	seen := echo(t, srv, "svc")
	c := dial(t, srv.URL())
	if _, err := c.Request("svc", []byte("before"), wait); err != nil {
		t.Fatalf("request before the fault: %v", err)
	}
	natstest.Receive(t, seen, wait, "request before the fault")
	srv.FreezeReplies()
	_, err := c.Request("svc", []byte("lost ack"), 200*time.Millisecond)
	if !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("request with replies frozen: err = %v, want %v", err, nats.ErrTimeout)
	}
	if m := natstest.Receive(t, seen, wait, "request while replies are frozen"); string(m.Data) != "lost ack" {
		t.Fatalf("server saw %q, want %q", m.Data, "lost ack")
	}
	srv.Thaw()
	if _, err := c.Request("svc", []byte("after"), wait); err != nil {
		t.Fatalf("request after thaw: %v", err)
	}
}

func TestCutConnectionsResetsAndClientsReconnect(t *testing.T) {
	srv := natstest.NewServer(t)
	a := dial(t, srv.URL())
	b := dial(t, srv.URL())
	if n := srv.NumClients(); n != 2 {
		t.Fatalf("NumClients() = %d before the cut, want 2", n)
	}
	srv.CutConnections()
	for _, c := range []*conn{a, b} {
		err := natstest.Receive(t, c.disconnected, wait, "disconnect after cut")
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("disconnect error = %v, want a connection reset", err)
		}
		natstest.Receive(t, c.reconnected, wait, "reconnect after cut")
	}
	echo(t, srv, "svc")
	if _, err := a.Request("svc", nil, wait); err != nil {
		t.Fatalf("request after reconnect: %v", err)
	}
}

func TestLatencyDelaysEachDirection(t *testing.T) {
	srv := natstest.NewServer(t)
	echo(t, srv, "svc")
	c := dial(t, srv.URL())
	roundTrip := func() time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := c.Request("svc", nil, wait); err != nil {
			t.Fatalf("request: %v", err)
		}
		return time.Since(start)
	}
	const d = 40 * time.Millisecond
	srv.Latency(d)
	if rt := roundTrip(); rt < 2*d {
		t.Fatalf("round trip with latency %v took %v, want at least %v", d, rt, 2*d)
	}
	srv.Latency(0)
	if rt := roundTrip(); rt >= 2*d {
		t.Fatalf("round trip after removing latency took %v, want under %v", rt, 2*d)
	}
}

func TestStopResetsConnectionsAndStartKeepsURLAndStore(t *testing.T) {
	srv := natstest.NewServer(t, natstest.WithJetStream())
	url := srv.URL()
	c := dial(t, url)
	js, err := c.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish("s.1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	natstest.Receive(t, c.disconnected, wait, "disconnect on stop")
	if _, err := nats.Connect(url, nats.Timeout(time.Second)); err == nil {
		t.Fatal("connect to a stopped server succeeded")
	}
	srv.Start()
	if srv.URL() != url {
		t.Fatalf("URL changed across restart: %s, then %s", url, srv.URL())
	}
	natstest.Receive(t, c.reconnected, wait, "reconnect on start")
	m, err := js.GetMsg("S", 1)
	if err != nil {
		t.Fatalf("stored message after restart: %v", err)
	}
	if string(m.Data) != "kept" {
		t.Fatalf("stored message = %q, want %q", m.Data, "kept")
	}
}

func TestStopWhileRepliesAreFrozenLosesThem(t *testing.T) {
	srv := natstest.NewServer(t)
	seen := echo(t, srv, "svc")
	c := dial(t, srv.URL())
	inbox, err := c.SubscribeSync("reply")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	srv.FreezeReplies()
	if err := c.PublishRequest("svc", "reply", []byte("acked?")); err != nil {
		t.Fatal(err)
	}
	natstest.Receive(t, seen, wait, "request at the server")
	srv.Stop()
	quiet(t, c.disconnected, 100*time.Millisecond, "disconnect while replies are frozen")
	srv.Thaw()
	err = natstest.Receive(t, c.disconnected, wait, "disconnect on thaw")
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("disconnect error = %v, want a connection reset", err)
	}
	if m, err := inbox.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("reply %q held while the server stopped was delivered; it should be lost", m.Data)
	}
}
