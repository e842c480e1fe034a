package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a NATS server run for one test, behind a fault proxy. It is not
// safe for concurrent use: drive its faults from the test's goroutine.
//
// Clients reach the server only through the proxy, whose address (URL) never
// changes, so the server behind it can stop, start on another port or in
// another container, and be frozen, slowed down or cut off.
type Server struct {
	t       testing.TB
	name    string
	tls     bool
	backend backend
	proxy   *proxy
	direct  string // the server's own host:port while running
	running bool
	// routesIn are the route proxies through which the other members of
	// its cluster reach this server's route listener (see Cluster.Isolate).
	routesIn []*proxy
	// leavesIn are the hub-link proxies through which leaves reach this
	// server's leaf node listener; hubLink is this leaf's link to its hub.
	leavesIn []*proxy
	hubLink  *Link
	// leafListen: the server accepts leaf nodes (WithLeafNodes).
	leafListen bool
}

// backend runs one nats-server: in this process or in a container.
type backend interface {
	// start starts the server and returns the host:port this process reaches
	// its client listener on; it may differ from one start to the next.
	start() (string, error)
	// stop stops it, keeping its JetStream store for the next start.
	stop()
	// kill ends it as abruptly as the backend can, keeping its store.
	kill()
	// routeAddr is the host:port this process reaches the running server's
	// route listener on.
	routeAddr() (string, error)
	// leafAddr is the host:port this process reaches the running server's
	// leaf node listener on.
	leafAddr() (string, error)
	// close releases everything the backend holds; it is called once, last.
	close()
	kind() Backend
	// jsz reads the server's JetStream monitoring report, as /jsz does.
	jsz(opts *server.JSzOptions) (*server.JSInfo, error)
	// placeable reports whether this server, the meta leader, can place a
	// stream with n replicas now.
	placeable(n int) bool
	// varz reads the server's general monitoring report, as /varz does.
	varz() (*server.Varz, error)
	// natsServer is the in-process server, or nil.
	natsServer() *server.Server
}

// NewServer starts a nats-server on the backend WithBackend or
// NATSTEST_BACKEND chooses, and stops it when the test ends. WithJetStream and
// WithKV enable JetStream with a store that survives Stop and Start;
// WithServerOptions changes anything else.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := newConfig(opts)
	s := newServer(t, resolveBackend(t, cfg), serverSpec{cfg: cfg, name: "natstest"})
	s.Start()
	return s
}

// newServer makes a stopped server and its proxy, removed when the test ends.
func newServer(t testing.TB, kind Backend, spec serverSpec) *Server {
	t.Helper()
	p, err := newProxy()
	if err != nil {
		t.Fatalf("natstest: fault proxy: %v", err)
	}
	s := &Server{t: t, proxy: p, name: spec.name}
	t.Cleanup(s.close)
	spec.advertise = p.addr()
	if spec.cfg.leafNodes && kind == Embedded {
		spec.leafPort = freePorts(t, 1)[0]
	}
	s.leafListen = spec.cfg.leafNodes
	s.backend, s.tls = newBackend(t, kind, spec)
	return s
}

// serverSpec is what a backend needs to know to run one server.
type serverSpec struct {
	cfg       config
	name      string // server_name, stable across restarts (a cluster needs it)
	advertise string // the proxy's address, advertised to clients as connect_urls
	cluster   *clusterSpec
	leaf      *leafSpec // nil unless the server is a leaf node
	leafPort  int       // embedded: the leaf node listener's port, when cfg.leafNodes
}

// URL returns the client URL, such as nats://127.0.0.1:41234: the fault
// proxy's address, which stays the same across Stop and Start.
func (s *Server) URL() string {
	scheme := "nats"
	if s.tls {
		scheme = "tls"
	}
	return scheme + "://" + s.proxy.addr()
}

// DirectURL returns the server's own client URL, bypassing the fault proxy:
// for an observer that must see the server while clients suffer a fault (a
// responder during FreezeReplies, a check that a message arrived). It
// changes across Stop and Start, and is "" while the server is stopped.
func (s *Server) DirectURL() string {
	if s.direct == "" {
		return ""
	}
	scheme := "nats"
	if s.tls {
		scheme = "tls"
	}
	return scheme + "://" + s.direct
}

// Name returns the server's name (server_name), as leader reports give it.
func (s *Server) Name() string { return s.name }

// Backend returns the backend the server runs on.
func (s *Server) Backend() Backend { return s.backend.kind() }

// Running reports whether the server is started.
func (s *Server) Running() bool { return s.running }

// Start starts a stopped server, with the same JetStream store, behind the
// same URL. Starting a running server does nothing.
func (s *Server) Start() {
	s.t.Helper()
	if s.running {
		return
	}
	addr, err := s.backend.start()
	if err != nil {
		s.t.Fatalf("natstest: start server %s: %v", s.name, err)
	}
	s.started(addr)
}

// started records that the server listens on addr, and points its route
// and hub-link proxies at its route and leaf node listeners.
func (s *Server) started(addr string) {
	s.t.Helper()
	s.repoint("route", s.routesIn, s.backend.routeAddr)
	s.repoint("leaf node", s.leavesIn, s.backend.leafAddr)
	s.proxy.setUpstream(addr)
	s.direct = addr
	s.running = true
}

// repoint points the proxies through which other servers reach one of this
// server's listeners at where that listener is now.
func (s *Server) repoint(listener string, proxies []*proxy, addr func() (string, error)) {
	s.t.Helper()
	if len(proxies) == 0 {
		return
	}
	a, err := addr()
	if err != nil {
		s.t.Fatalf("natstest: %s address of server %s: %v", listener, s.name, err)
	}
	for _, p := range proxies {
		p.setUpstream(a)
	}
}

// Stop shuts the server down and waits until it has; clients see the
// connection drop, and new connections are reset until Start. A client whose
// connection is frozen (Freeze, FreezeReplies) sees nothing until Thaw, and
// then a reset: what the server sent that the freeze held is lost with the
// server, like an acknowledgement lost on the way. Stopping a stopped server
// does nothing.
func (s *Server) Stop() { s.halt(s.backend.stop) }

// Kill ends the server as a crash would, then behaves as Stop: on the
// container backend the process gets SIGKILL (docker kill --signal KILL), so
// whatever it had not written to its store is lost; an in-process server
// cannot lose its process, so on the embedded backend Kill shuts it down at
// once, without lame-duck mode, as Stop does. Start brings it back with the
// store as the crash left it. Killing a stopped server does nothing.
func (s *Server) Kill() { s.halt(s.backend.kill) }

// halt ends a running server with end and detaches its proxies from it.
func (s *Server) halt(end func()) {
	if !s.running {
		return
	}
	s.proxy.setUpstream("")
	inward := append(append([]*proxy(nil), s.routesIn...), s.leavesIn...)
	for _, p := range inward {
		p.setUpstream("")
	}
	end()
	s.proxy.serverGone()
	for _, p := range inward {
		p.serverGone()
	}
	s.direct = ""
	s.running = false
}

// Restart stops the server and starts it again behind the same URL.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Freeze stops all traffic between clients and the server, in both
// directions, while every TCP connection stays open: a hung server or a
// silent network. Nothing is lost: what was sent meanwhile is delivered, in
// order, on Thaw. New connections are accepted but hear nothing either.
// Routes between cluster members are not frozen: it is the clients' link that
// hangs.
func (s *Server) Freeze() { s.proxy.freeze(toServer, toClient) }

// FreezeReplies holds server→client traffic while client→server traffic
// still flows: the server receives and acts on every message, but the client
// hears nothing back, as when an acknowledgement is lost. Thaw delivers what
// was held.
func (s *Server) FreezeReplies() { s.proxy.freeze(toClient) }

// Thaw ends Freeze and FreezeReplies; held traffic is delivered in order.
func (s *Server) Thaw() { s.proxy.thaw() }

// Latency delays all traffic between clients and the server by d in each
// direction, so a request's round trip takes at least 2×d. Zero removes it.
// It applies to data already in flight as well as to new connections.
func (s *Server) Latency(d time.Duration) { s.proxy.setLatency(d) }

// CutConnections resets every client connection at once (a TCP RST to both
// ends), discarding anything frozen in them. The server keeps running and
// clients may reconnect at once.
func (s *Server) CutConnections() { s.proxy.cut() }

// NATSServer returns the running in-process nats-server, for inspection
// (connection counts, JetStream state); nil while stopped and on the
// container backend.
func (s *Server) NATSServer() *server.Server { return s.backend.natsServer() }

// Varz returns the running server's general monitoring report (what
// /varz serves: connection counts, totals, limits), on either backend; the
// test fails if it cannot be read, as when the server is stopped.
func (s *Server) Varz() *server.Varz {
	s.t.Helper()
	v, err := s.backend.varz()
	if err != nil {
		s.t.Fatalf("natstest: varz of server %s: %v", s.name, err)
	}
	return v
}

// NumClients returns the number of client connections the running server
// has now (observers on DirectURL included), on either backend.
func (s *Server) NumClients() int {
	s.t.Helper()
	return s.Varz().Connections
}

// close runs at the end of the test: the server, then the proxy, so that no
// goroutine or container outlives the test.
func (s *Server) close() {
	if s.backend != nil {
		s.Stop()
		s.backend.close()
	}
	s.proxy.close()
}
