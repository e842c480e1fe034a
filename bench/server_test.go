package bench

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// benchServer is nats-server in this process with nothing between it and the
// clients. natstest puts a fault proxy in front of every server, which is
// right for fault tests and wrong here: the proxy's copying would be in every
// measured call, on both sides, and narrow every ratio. The port is kept
// across Stop and Start so that both sides reconnect to the same URL.
type benchServer struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server // nil while stopped
}

// newServer starts a server, with JetStream (its store in tb.TempDir()) when
// jetStream is set, and stops it when the benchmark or test ends.
func newServer(tb testing.TB, jetStream bool) *benchServer {
	tb.Helper()
	s := &benchServer{tb: tb, opts: server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	}}
	if jetStream {
		s.opts.JetStream = true
		s.opts.StoreDir = tb.TempDir()
	}
	s.Start()
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	tb.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL; it stays the same across Stop and Start.
func (s *benchServer) URL() string {
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// Start starts the server and returns once it accepts connections.
func (s *benchServer) Start() {
	s.tb.Helper()
	opts := s.opts // nats-server keeps and changes the Options it is given
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.tb.Fatalf("new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		s.tb.Fatalf("server not ready for connections within 10s")
	}
	s.srv = srv
}

// Stop shuts the server down and waits until it has; clients see the
// connection drop. Stopping a stopped server does nothing.
func (s *benchServer) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}
