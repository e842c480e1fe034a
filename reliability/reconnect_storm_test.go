package reliability_test

import (
	"bytes"
	"io"
	"net"
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

// A server that closes every connection right after accepting it must not
// make the client reconnect faster than its backoff allows (issue 8, defect
// 1b). Before, each new connection closed the breaker again, so it never
// opened: the client reconnected at its reconnect wait, or at once when
// nats.go gave the connection up, about 1,200 times in 3 s.

// stormWait and stormMaxBackoff pace the clients of these tests. Over
// stormWindow a client retrying at its reconnect wait would connect
// stormWindow/stormWait = 200 times; the breaker's interval, doubling to
// stormMaxBackoff and spread by jitter down to half of it, allows about
// 2×stormWindow/stormMaxBackoff = 20, plus the few before it opened.
const (
	stormWait       = 20 * time.Millisecond
	stormMaxBackoff = 400 * time.Millisecond
	stormThreshold  = 3
	stormWindow     = 10 * stormMaxBackoff
	stormAllowed    = 2*int(stormWindow/stormMaxBackoff) + 2*stormThreshold + 4
)

func stormClientOptions() []natsclient.Option {
	return []natsclient.Option{
		natsclient.WithReconnectWait(stormWait),
		natsclient.WithMaxBackoff(stormMaxBackoff),
		natsclient.WithCircuitBreakerThreshold(stormThreshold),
		natsclient.WithTimeout(time.Second),
	}
}

// countOver returns how much count grew over stormWindow, while failing the
// test if the client announces a connection meanwhile.
func countOver(t *testing.T, events <-chan natsclient.StateChange, count func() int64) int64 {
	t.Helper()
	start := count()
	window := time.NewTimer(stormWindow)
	defer window.Stop()
	for {
		select {
		case ev := <-events:
			if ev.To == natsclient.StateConnected && ev.From != natsclient.StateConnected {
				t.Fatalf("announced connected while the server closes every connection: %+v", ev)
			}
		case <-window.C:
			return count() - start
		}
	}
}

func checkPaced(t *testing.T, n int64, c *natsclient.Client) {
	t.Helper()
	t.Logf("%d connections in %v; stats %+v", n, stormWindow, c.Stats())
	if n > int64(stormAllowed) {
		t.Fatalf("%d connections in %v, at most %d allowed by the backoff: a reconnect storm", n, stormWindow, stormAllowed)
	}
	if n == 0 {
		t.Fatalf("no connection in %v: the client stopped trying", stormWindow)
	}
	if err := c.Publish(natstest.Context(t, testTimeout), "storm", nil); err == nil {
		t.Fatal("Publish succeeded while every connection is closed at once")
	}
}

// The cause is one the client cannot validate away: between the client and
// a healthy server sits a proxy that resets each connection as soon as the
// server has completed its handshake (its first PONG). nats.go reconnects
// each time, and the client sees connections that are up, then gone.
func TestServerClosingEachConnectionIsPacedByTheBreaker(t *testing.T) {
	srv := natstest.NewServer(t)
	p := newClosingProxy(t, strings.TrimPrefix(srv.DirectURL(), "nats://"))
	c := newClient(t, p.url(), stormClientOptions()...)
	ctx := natstest.Context(t, testTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)
	p.closeEach(true)
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))
	n := countOver(t, events, p.accepted.Load)
	checkPaced(t, n, c)

	p.closeEach(false)
	natstest.Await(t, events, waitTimeout, "connected again, breaker closed", func(ev natsclient.StateChange) bool {
		return ev.To == natsclient.StateConnected && ev.Breaker == natsclient.BreakerClosed
	})
	if err := c.Publish(ctx, "storm.over", nil); err != nil {
		t.Fatalf("Publish after the server stopped closing connections: %v", err)
	}
}

// The issue's own cause: a server configured with a control-line limit
// below the client's (which it does not announce) closes the connection on
// a subscription's SUB line, and nats.go gives the connection up; every
// new connection the client dials subscribes again and is closed again.
// Embedded only: natstest's container configuration cannot express
// max_control_line (the proxy test above runs on both backends).
func TestServerRefusingASubscriptionIsPacedByTheBreaker(t *testing.T) {
	const limit = 512
	srv := natstest.NewServer(t, natstest.WithBackend(natstest.Embedded),
		natstest.WithServerOptions(func(o *server.Options) { o.MaxControlLine = limit }))
	c := newClient(t, srv.URL(), stormClientOptions()...)
	ctx := natstest.Context(t, testTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)
	subject := strings.Repeat("x", limit+100) // valid for the client's 4096 bytes
	sub, err := c.Subscribe(subject, func(*nats.Msg) {})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))
	total := func() int64 { return int64(srv.Varz().TotalConnections) }
	n := countOver(t, events, total)
	checkPaced(t, n, c)

	if err := sub.Unsubscribe(); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	natstest.Await(t, events, waitTimeout, "connected once the subscription is gone", func(ev natsclient.StateChange) bool {
		return ev.To == natsclient.StateConnected && ev.Breaker == natsclient.BreakerClosed
	})
}

// closingProxy forwards connections to a server. While closing is set it
// resets each connection right after passing the server's first PONG to
// the client: the handshake completes, then the connection is gone.
type closingProxy struct {
	t        *testing.T
	ln       net.Listener
	upstream string
	closing  atomic.Bool
	accepted atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newClosingProxy(t *testing.T, upstream string) *closingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &closingProxy{t: t, ln: ln, upstream: upstream, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *closingProxy) url() string { return "nats://" + p.ln.Addr().String() }

// closeEach sets whether new connections are closed after the handshake,
// and when set, resets those open now.
func (p *closingProxy) closeEach(on bool) {
	p.closing.Store(on)
	if on {
		p.mu.Lock()
		defer p.mu.Unlock()
		for c := range p.conns {
			reset(c)
		}
	}
}

func (p *closingProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(server, client)
			reset(server)
		}()
		go func() {
			defer p.wg.Done()
			p.toClient(client, server)
			reset(client)
			p.untrack(client, server)
		}()
	}
}

// toClient copies the server's bytes to the client, and while closing is
// set, stops after the first PONG.
func (p *closingProxy) toClient(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	var seen []byte // the tail of what was passed on, to find a PONG split across reads
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
			seen = append(seen, buf[:n]...)
			if p.closing.Load() && bytes.Contains(seen, []byte("PONG\r\n")) {
				return
			}
			seen = seen[max(0, len(seen)-8):]
		}
		if err != nil {
			return
		}
	}
}

func (p *closingProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *closingProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (p *closingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// reset closes c with a TCP RST, as a server that drops a connection would.
func reset(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}
