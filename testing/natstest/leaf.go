package natstest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A leaf node reaches its hub through hub-link proxies of its own, one per
// hub member, as clients reach a server through its fault proxy. The hub
// points them at its leaf node listener whenever it starts (see
// Server.started), so a hub that restarts, on another port or in another
// container, keeps its leaves behind the same addresses, and HubLink's faults
// act on exactly one leaf's link. A hub would tell its leaves its own leaf
// node address (and its cluster peers'), which they would redial after a Cut,
// around the proxy: hubs do not advertise it (no_advertise).

// leafSpec is what a leaf node needs to know of its hub.
type leafSpec struct {
	remotes []string // host:port of the hub-link proxies it dials
}

func (l *leafSpec) remoteURLs() []*url.URL {
	urls := make([]*url.URL, len(l.remotes))
	for i, addr := range l.remotes {
		urls[i] = &url.URL{Scheme: "nats", Host: addr}
	}
	return urls
}

// NewLeaf starts a leaf node whose remote is hub, reached through a fault
// proxy that HubLink drives. The hub must accept leaf nodes (WithLeafNodes).
// The leaf runs on the backend opts choose and is itself a Server: clients
// connect to its URL and the usual fault verbs act on their connections.
// Give each side its own WithJetStreamDomain to run JetStream on both.
//
// A leaf whose streams mirror or source the hub's (a KV bucket's mirror)
// and that loses its link (HubLink().Cut) asks the hub for consumers that
// never answer; an embedded server that shuts down meanwhile leaves that
// wait running, up to 30s, in the test binary. A TestMain that checks for
// leaked goroutines passes IgnoreGoroutines:
//
//	goleak.VerifyTestMain(m, natstest.IgnoreGoroutines()...)
func NewLeaf(t testing.TB, hub *Server, opts ...Option) *Server {
	t.Helper()
	return newLeaf(t, []*Server{hub}, opts)
}

// NewLeaf starts a leaf node whose remote is the whole cluster: it may
// connect to any member, each through a hub-link proxy of its own, and
// HubLink drives them all together. The cluster must have been made
// WithLeafNodes.
func (c *Cluster) NewLeaf(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return newLeaf(t, c.servers, opts)
}

func newLeaf(t testing.TB, hub []*Server, opts []Option) *Server {
	t.Helper()
	for _, h := range hub {
		if !h.leafListen {
			t.Fatalf("natstest: NewLeaf: hub server %s accepts no leaf nodes: start it with natstest.WithLeafNodes()", h.name)
		}
	}
	cfg := newConfig(opts)
	kind := resolveBackend(t, cfg)
	host := "127.0.0.1"
	if kind == Container {
		var err error
		if host, err = dockerBridgeIP(); err != nil {
			t.Fatalf("natstest: hub link for a container leaf: %v", err)
		}
	}
	link := &Link{}
	spec := &leafSpec{}
	for _, h := range hub {
		p, err := listenProxy(host)
		if err != nil {
			t.Fatalf("natstest: hub link proxy: %v", err)
		}
		t.Cleanup(p.close)
		if h.running {
			addr, err := h.backend.leafAddr()
			if err != nil {
				t.Fatalf("natstest: leaf node address of hub %s: %v", h.name, err)
			}
			p.setUpstream(addr)
		}
		h.leavesIn = append(h.leavesIn, p)
		link.proxies = append(link.proxies, p)
		spec.remotes = append(spec.remotes, p.addr())
	}
	name := "leaf" + strconv.Itoa(leafCount(hub[0]))
	s := newServer(t, kind, serverSpec{cfg: cfg, name: name, leaf: spec})
	s.hubLink = link
	s.Start()
	return s
}

// leafCount numbers the leaves of a hub, for their server names.
func leafCount(hub *Server) int { return len(hub.leavesIn) - 1 }

// Link is a leaf node's connection to its hub, through the fault proxy
// between them. Like Server, drive it from the test's goroutine.
type Link struct {
	proxies []*proxy // one per hub member
}

// HubLink returns this leaf's link to its hub; the test fails if the server
// is not a leaf (NewLeaf).
func (s *Server) HubLink() *Link {
	s.t.Helper()
	if s.hubLink == nil {
		s.t.Fatalf("natstest: server %s is not a leaf node: HubLink needs one made by NewLeaf", s.name)
	}
	return s.hubLink
}

// Cut drops the leaf's connection to the hub (a TCP reset at both ends) and
// refuses the leaf's attempts to reconnect until Restore, as a site that
// lost its uplink. Both servers keep running.
func (l *Link) Cut() {
	for _, p := range l.proxies {
		p.refuse()
	}
}

// Restore ends Cut; the leaf reconnects on its own (nats-server retries its
// remote every second).
func (l *Link) Restore() {
	for _, p := range l.proxies {
		p.admit()
	}
}

// Freeze stops all traffic on the link in both directions while the TCP
// connection stays open; what was sent is delivered in order on Thaw.
func (l *Link) Freeze() {
	for _, p := range l.proxies {
		p.freeze(toServer, toClient)
	}
}

// Thaw ends Freeze.
func (l *Link) Thaw() {
	for _, p := range l.proxies {
		p.thaw()
	}
}

// Latency delays all traffic on the link by d in each direction; zero
// removes it.
func (l *Link) Latency(d time.Duration) {
	for _, p := range l.proxies {
		p.setLatency(d)
	}
}

// edgeConf is the part of a container's configuration file that makes it a
// member of a JetStream domain, a hub that accepts leaf nodes, or a leaf.
func edgeConf(spec serverSpec) string {
	var b strings.Builder
	if spec.cfg.domain != "" {
		fmt.Fprintf(&b, "jetstream {\n  domain: %q\n}\n", spec.cfg.domain) // store_dir: the --store_dir flag
	}
	if spec.cfg.leafNodes || spec.leaf != nil {
		b.WriteString("leafnodes {\n")
		if spec.cfg.leafNodes {
			fmt.Fprintf(&b, "  port: %d\n  no_advertise: true\n", leafPort)
		}
		if spec.leaf != nil {
			urls := make([]string, len(spec.leaf.remotes))
			for i, u := range spec.leaf.remoteURLs() {
				urls[i] = strconv.Quote(u.String())
			}
			fmt.Fprintf(&b, "  remotes: [ { urls: [%s] } ]\n", strings.Join(urls, ", "))
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// WaitForHubLink waits until the leaf's connection to its hub is up (up
// true) or gone (up false), as the leaf's monitoring report says; the test
// fails after 30s. Interest and JetStream domains take a moment more to
// cross a new link: a first call to the hub may still find no responders.
func (s *Server) WaitForHubLink(up bool) {
	s.t.Helper()
	s.HubLink()
	var last error
	if !poll(func() bool {
		v, err := s.backend.varz()
		if last = err; err != nil {
			return false
		}
		return (v.Leafs > 0) == up
	}) {
		s.t.Fatalf("natstest: leaf %s: hub link not %s within %v (last error: %v)", s.name, upDown(up), clusterReady, last)
	}
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
