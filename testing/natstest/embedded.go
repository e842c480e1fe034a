package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embedded runs nats-server in this process. Its client port is random on
// each start (only the proxy's must be stable), so no other process can take
// it while the server is stopped; its cluster port, which the other members
// route to, is chosen once and kept.
type embedded struct {
	t     testing.TB
	store string         // the JetStream store we made and remove in close
	opts  server.Options // the template each start uses
	srv   *server.Server // nil while stopped
}

func newEmbedded(t testing.TB, spec serverSpec) *embedded {
	e := &embedded{t: t, opts: server.Options{
		ServerName: spec.name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoLog:      true,
		NoSigs:     true,
		// Clustered servers tell clients where the other members are
		// (connect_urls in INFO). Advertising the proxy's address instead of
		// the server's own keeps reconnecting clients on the proxy, where the
		// faults are; without it a client would bypass Freeze and friends.
		ClientAdvertise: spec.advertise,
	}}
	if spec.cfg.jetStream || spec.cluster != nil {
		e.opts.JetStream = true
		e.store = jetStreamStoreDir(t)
		e.opts.StoreDir = e.store
	}
	if c := spec.cluster; c != nil {
		e.opts.Cluster = server.ClusterOpts{
			Name:      c.name,
			Host:      "127.0.0.1",
			Port:      c.ports[c.index],
			Advertise: c.gossip, // see Cluster.routeProxies
		}
		e.opts.Routes = c.routeURLs()
	}
	e.opts.JetStreamDomain = spec.cfg.domain
	if spec.cfg.leafNodes {
		e.opts.LeafNode.Host = "127.0.0.1"
		e.opts.LeafNode.Port = spec.leafPort
		e.opts.LeafNode.NoAdvertise = true // see leaf.go: leaves stay behind their hub link
	}
	if l := spec.leaf; l != nil {
		e.opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: l.remoteURLs()}}
	}
	for _, fn := range spec.cfg.serverOptions {
		fn(&e.opts)
	}
	return e
}

func (e *embedded) kind() Backend { return Embedded }

func (e *embedded) start() (string, error) {
	opts := e.opts // nats-server keeps and changes the Options it is given
	srv, err := server.NewServer(&opts)
	if err != nil {
		return "", err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return "", fmt.Errorf("not ready for connections within 10s")
	}
	e.srv = srv
	return net.JoinHostPort(e.opts.Host, strconv.Itoa(srv.Addr().(*net.TCPAddr).Port)), nil
}

func (e *embedded) stop() {
	if e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.srv = nil
}

// kill is stop: see Server.Kill.
func (e *embedded) kill() { e.stop() }

func (e *embedded) routeAddr() (string, error) {
	if e.srv == nil {
		return "", fmt.Errorf("server stopped")
	}
	return net.JoinHostPort(e.opts.Cluster.Host, strconv.Itoa(e.opts.Cluster.Port)), nil
}

func (e *embedded) leafAddr() (string, error) {
	if e.srv == nil {
		return "", fmt.Errorf("server stopped")
	}
	if e.opts.LeafNode.Port == 0 {
		return "", fmt.Errorf("server accepts no leaf nodes (natstest.WithLeafNodes)")
	}
	return net.JoinHostPort(e.opts.LeafNode.Host, strconv.Itoa(e.opts.LeafNode.Port)), nil
}

func (e *embedded) close() {
	e.stop()
	if e.store != "" {
		removeStore(e.t, e.store)
	}
}

func (e *embedded) natsServer() *server.Server { return e.srv }

func (e *embedded) jsz(opts *server.JSzOptions) (*server.JSInfo, error) {
	if e.srv == nil {
		return nil, fmt.Errorf("server stopped")
	}
	return e.srv.Jsz(opts)
}

func (e *embedded) varz() (*server.Varz, error) {
	if e.srv == nil {
		return nil, fmt.Errorf("server stopped")
	}
	return e.srv.Varz(nil)
}

// jetStreamStoreDir makes the JetStream store directory. The embedded
// backend removes it in close, after the server has stopped: t.TempDir is not
// used because its cleanup could run before the server's (cleanups run in
// reverse order of registration), and because nats-server's file store can
// still write consumer state for a moment after Shutdown returns, which made
// t.TempDir's single RemoveAll fail with "directory not empty".
func jetStreamStoreDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "natstest-js-")
	if err != nil {
		t.Fatalf("natstest: JetStream store directory: %v", err)
	}
	return dir
}

// removeStore removes the store directory, retrying for a few seconds while
// the stopped server's last writes land.
func removeStore(t testing.TB, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("natstest: remove JetStream store %s: %v", dir, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// placeable reports whether this server, the meta leader, knows n peers and
// can place a replicated stream on them now (see placementProbe).
func (e *embedded) placeable(n int) bool {
	if e.srv == nil || len(e.srv.JetStreamClusterPeers()) < n {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return placementProbe(ctx, "nats://"+e.srv.Addr().String(), n)
}
