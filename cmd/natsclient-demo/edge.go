package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runEdge is the -edge story: a hub (JetStream domain "hub") holding bucket
// cfg, a leaf node (domain "edge") mirroring it and connected to the hub
// through a link the demo can cut, and the client connected to the leaf.
// While the link is cut, the site goes on: local publishing works, the
// mirror answers reads, and a write bound for the hub fails fast with
// ErrUnreachable, with the breaker closed. When the link returns, writes
// reach the hub again and the mirror follows, with no call from the user.
func (d *demo) runEdge() error {
	hub, err := startEdgeServer("hub", nil)
	if err != nil {
		return err
	}
	defer hub.stop()
	link, err := newHubLink(hub.leafAddr)
	if err != nil {
		return err
	}
	defer link.close()
	leaf, err := startEdgeServer("edge", &server.RemoteLeafOpts{URLs: []*neturl.URL{{Scheme: "nats", Host: link.addr()}}})
	if err != nil {
		return err
	}
	defer leaf.stop()
	d.say("servers", "hub %s (JetStream domain hub), leaf %s (domain edge) linked to it", hub.url(), leaf.url())
	if err := d.until("the hub link is up", func() bool { return leaf.srv.NumLeafNodes() == 1 }); err != nil {
		return err
	}

	client, err := natsclient.NewClient(leaf.url(),
		natsclient.WithName("natsclient-demo-edge"),
		natsclient.WithJetStreamDomain("edge"),
		natsclient.WithReconnectWait(100*time.Millisecond),
		natsclient.WithMaxBackoff(time.Second),
		natsclient.WithMaxReconnects(-1),
	)
	if err != nil {
		return err
	}
	ctx := context.Background()
	defer client.Close(ctx)
	connectCtx, cancel := context.WithTimeout(ctx, d.wait)
	defer cancel()
	if err := client.Connect(connectCtx); err != nil {
		return fmt.Errorf("connect to the leaf: %w", err)
	}
	central, err := client.Domain("hub")
	if err != nil {
		return err
	}

	// The hub's bucket, a value in it, and its mirror at the site.
	var origin jetstream.KeyValue
	if err := d.retry(ctx, "create bucket cfg at the hub", func(ctx context.Context) (err error) {
		origin, err = central.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "cfg"})
		return err
	}); err != nil {
		return err
	}
	if _, err := central.NewKVStore(origin).Put(ctx, "greeting", []byte("hello")); err != nil {
		return fmt.Errorf("put at the hub: %w", err)
	}
	mirror, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket: "cfg", Mirror: &jetstream.StreamSource{Name: "cfg", Domain: "hub"}})
	if err != nil {
		return fmt.Errorf("mirror cfg at the site: %w", err)
	}
	cfg := client.NewKVStore(mirror)
	if err := d.mirrorShows(ctx, cfg, "hello"); err != nil {
		return err
	}
	if _, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "SITE", Subjects: []string{"site.events"}}); err != nil {
		return fmt.Errorf("local stream: %w", err)
	}
	received := make(chan string, 16)
	if _, err := client.Subscribe("site.telemetry", func(m *nats.Msg) { received <- string(m.Data) }); err != nil {
		return err
	}

	d.say("outage", "cutting the leaf's link to the hub")
	link.cut()
	if err := d.until("the hub link is down", func() bool { return leaf.srv.NumLeafNodes() == 0 }); err != nil {
		return err
	}
	if err := d.publishAndReceiveOn(ctx, client, "site.telemetry", received, "reading at the site"); err != nil {
		return err
	}
	ack, err := client.PublishToStream(ctx, "site.events", []byte("door opened"))
	if err != nil {
		return fmt.Errorf("local stream publish with the hub cut off: %w", err)
	}
	d.say("stream", "local stream %s stored message %d", ack.Stream, ack.Sequence)
	e, err := cfg.Get(ctx, "greeting")
	if err != nil {
		return fmt.Errorf("read from the mirror with the hub cut off: %w", err)
	}
	d.say("kv read", "mirror says greeting = %q", e.Value())
	for i := range 3 {
		t0 := time.Now()
		_, err := cfg.Put(ctx, "greeting", []byte("bye"))
		if !errors.Is(err, natsclient.ErrUnreachable) {
			return fmt.Errorf("write %d bound for the cut-off hub: got %v, want ErrUnreachable", i+1, err)
		}
		d.say("kv write", "failed fast in %v: %v", time.Since(t0).Round(time.Millisecond), err)
	}
	if st := client.Stats(); st.Breaker != natsclient.BreakerClosed {
		return fmt.Errorf("breaker %s with the hub cut off; want closed", st.Breaker)
	}
	d.say("breaker", "still closed: the leaf answers, only the hub is out of reach")

	d.say("recovery", "restoring the link")
	link.restore()
	if err := d.until("the hub link is up again", func() bool { return leaf.srv.NumLeafNodes() == 1 }); err != nil {
		return err
	}
	if err := d.retry(ctx, "write through the mirror", func(ctx context.Context) error {
		_, err := cfg.Put(ctx, "greeting", []byte("welcome back"))
		return err
	}); err != nil {
		return err
	}
	d.say("kv write", "greeting = %q stored at the hub", "welcome back")
	if err := d.mirrorShows(ctx, cfg, "welcome back"); err != nil {
		return err
	}
	st := client.Stats()
	d.say("stats", "breaker trips=%d reconnects=%d (the client's own connection never failed)", st.BreakerTrips, st.Reconnects)
	if st.BreakerTrips != 0 {
		return fmt.Errorf("the breaker tripped %d times", st.BreakerTrips)
	}
	return nil
}

// until waits for cond, which no event announces (a server's count of leaf
// connections), up to d.wait.
func (d *demo) until(what string, cond func() bool) error {
	deadline := time.Now().Add(d.wait)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, d.wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.say("link", "%s", what)
	return nil
}

// retry calls fn until it succeeds, up to d.wait: a JetStream domain takes
// a moment to be reachable across a new leaf link.
func (d *demo) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(d.wait)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *demo) mirrorShows(ctx context.Context, cfg *natsclient.KVStore, want string) error {
	return d.retry(ctx, "the mirror shows "+strconv.Quote(want), func(ctx context.Context) error {
		e, err := cfg.Get(ctx, "greeting")
		if err != nil {
			return err
		}
		if string(e.Value()) != want {
			return fmt.Errorf("mirror has %q", e.Value())
		}
		d.say("kv read", "mirror says greeting = %q", want)
		return nil
	})
}

func (d *demo) publishAndReceiveOn(ctx context.Context, c *natsclient.Client, subject string, received <-chan string, payload string) error {
	if err := c.Publish(ctx, subject, []byte(payload)); err != nil {
		return fmt.Errorf("publish %q: %w", payload, err)
	}
	select {
	case got := <-received:
		d.say("pub/sub", "%q published and received at the site", got)
		return nil
	case <-time.After(d.wait):
		return fmt.Errorf("subscription did not receive %q within %v", payload, d.wait)
	}
}

// edgeServer is an embedded nats-server with JetStream in a domain of its
// own: a hub accepting leaf nodes, or a leaf with a remote.
type edgeServer struct {
	srv      *server.Server
	store    string
	leafAddr string // the hub's leaf node listener; "" for a leaf
}

func startEdgeServer(domain string, remote *server.RemoteLeafOpts) (*edgeServer, error) {
	store, err := os.MkdirTemp("", "natsclient-demo-"+domain+"-")
	if err != nil {
		return nil, err
	}
	opts := &server.Options{ServerName: domain, Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, JetStreamDomain: domain, StoreDir: store}
	e := &edgeServer{store: store}
	if remote != nil {
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
		opts.LeafNode.ReconnectInterval = 200 * time.Millisecond
	} else {
		opts.LeafNode.Host, opts.LeafNode.Port, opts.LeafNode.NoAdvertise = "127.0.0.1", server.RANDOM_PORT, true
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		os.RemoveAll(store)
		return nil, fmt.Errorf("%s server: %w", domain, err)
	}
	srv.Start()
	e.srv = srv
	if !srv.ReadyForConnections(10 * time.Second) {
		e.stop()
		return nil, fmt.Errorf("%s server not ready within 10s", domain)
	}
	if remote == nil {
		// The port nats-server picked, as its monitoring report gives it.
		v, err := srv.Varz(nil)
		if err != nil {
			e.stop()
			return nil, fmt.Errorf("%s server's leaf node port: %w", domain, err)
		}
		e.leafAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(v.LeafNode.Port))
	}
	return e, nil
}

func (e *edgeServer) url() string { return "nats://" + e.srv.Addr().String() }

func (e *edgeServer) stop() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	os.RemoveAll(e.store)
}

// hubLink is a TCP relay between the leaf and the hub's leaf node
// listener: cut closes the link and refuses the leaf until restore, as a
// site that lost its uplink.
type hubLink struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cutOff   bool
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

func newHubLink(upstream string) (*hubLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &hubLink{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func (l *hubLink) addr() string { return l.ln.Addr().String() }

func (l *hubLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		refuse := l.cutOff
		l.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", l.upstream)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[s] = struct{}{}, struct{}{}
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pipe(c, s)
		go l.pipe(s, c)
	}
}

// pipe copies one direction; when it ends, it ends the other too.
func (l *hubLink) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	_, _ = io.Copy(dst, src)
	l.mu.Lock()
	delete(l.conns, src)
	delete(l.conns, dst)
	l.mu.Unlock()
	src.Close()
	dst.Close()
}

func (l *hubLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cutOff = true
	for c := range l.conns {
		c.Close()
	}
}

func (l *hubLink) restore() {
	l.mu.Lock()
	l.cutOff = false
	l.mu.Unlock()
}

func (l *hubLink) close() {
	l.ln.Close()
	l.cut()
	l.wg.Wait()
}
