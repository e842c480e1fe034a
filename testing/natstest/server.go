package natstest

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a NATS server run for one test. It is not safe for concurrent
// use: drive its faults from the test's goroutine.
type Server struct {
	t    testing.TB
	opts server.Options // the template each Start uses; Port is fixed by the first
	srv  *server.Server // nil while stopped
}

// NewServer starts a nats-server in-process on a random port and stops it
// when the test ends. WithJetStream and WithKV enable JetStream with its
// store in t.TempDir(); WithServerOptions changes anything else.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := newConfig(opts)
	s := &Server{t: t}
	s.opts = server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	}
	if cfg.jetStream {
		s.opts.JetStream = true
		s.opts.StoreDir = t.TempDir()
	}
	for _, fn := range cfg.serverOptions {
		fn(&s.opts)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL returns the client URL, such as nats://127.0.0.1:41234. It stays the
// same across Stop and Start.
func (s *Server) URL() string {
	scheme := "nats"
	if s.opts.TLSConfig != nil {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// Running reports whether the server is started.
func (s *Server) Running() bool { return s.srv != nil }

// Start starts a stopped server on its port, with the same JetStream store.
// Starting a running server does nothing.
func (s *Server) Start() {
	s.t.Helper()
	if s.srv != nil {
		return
	}
	opts := s.opts // nats-server keeps and changes the Options it is given
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("natstest: server on port %d not ready within 10s", s.opts.Port)
	}
	if s.opts.Port == server.RANDOM_PORT {
		s.opts.Port = srv.Addr().(*net.TCPAddr).Port
	}
	s.srv = srv
}

// Stop shuts the server down and waits until it has; clients see the
// connection drop. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// NATSServer returns the running nats-server, for inspection (connection
// counts, JetStream state); nil while stopped.
func (s *Server) NATSServer() *server.Server { return s.srv }
