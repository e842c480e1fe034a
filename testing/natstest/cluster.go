package natstest

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
)

// Cluster is n servers routed into one JetStream cluster, each behind its own
// fault proxy. Like Server, it is driven from the test's goroutine.
type Cluster struct {
	t       testing.TB
	servers []*Server
}

// clusterName is the cluster's name, as the servers report it.
const clusterName = "natstest"

// clusterReady bounds how long NewCluster waits for a meta leader.
const clusterReady = 30 * time.Second

// clusterSpec is what one member needs to know of its cluster.
type clusterSpec struct {
	name    string
	index   int
	names   []string                      // every member's server name, by index
	ports   []int                         // embedded: every member's route port, by index
	network *testcontainers.DockerNetwork // container: the cluster's own network
}

// NewCluster starts n servers (named n0, n1, …) routed into one JetStream
// cluster, on the backend WithBackend or NATSTEST_BACKEND chooses (embedded:
// routes on 127.0.0.1; containers: on a Docker network of their own), and
// returns once the cluster has a meta leader. Everything is removed when the
// test ends. JetStream is always on; options apply to every member.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: NewCluster(%d): want at least one server", n)
	}
	cfg := newConfig(opts)
	cfg.jetStream = true
	kind := resolveBackend(t, cfg)
	if kind == Container {
		if _, unsupported := containerConfig(serverSpec{cfg: cfg}); len(unsupported) > 0 {
			t.Logf("natstest: cluster runs embedded: the container backend cannot express these server options: %s",
				strings.Join(unsupported, ", "))
			kind = Embedded
		}
	}
	spec := clusterSpec{name: clusterName}
	for i := range n {
		spec.names = append(spec.names, "n"+strconv.Itoa(i))
	}
	if kind == Container {
		spec.network = newNetwork(t)
	} else {
		spec.ports = freePorts(t, n)
	}
	c := &Cluster{t: t}
	for i, name := range spec.names {
		member := spec
		member.index = i
		c.servers = append(c.servers, newServer(t, kind, serverSpec{cfg: cfg, name: name, cluster: &member}))
	}
	c.startAll()
	c.waitFor("a JetStream meta leader with every member current", c.metaReady)
	return c
}

// metaReady returns the meta leader's index once the leader sees every other
// member as a current peer and can place a stream on all of them, or -1: an
// R3 stream created before that is refused with "no suitable peers for
// placement, peer offline" (the leader places only on peers whose JetStream
// statistics it has received, which comes a little after they are current).
func (c *Cluster) metaReady() int {
	for i, s := range c.servers {
		info, err := s.backend.jsz(&server.JSzOptions{})
		if err != nil || info.Meta == nil || info.Meta.Leader != s.name {
			continue
		}
		current := 0
		for _, p := range info.Meta.Replicas {
			if p.Current && !p.Offline {
				current++
			}
		}
		if current == len(c.servers)-1 && s.backend.placeable(len(c.servers)) {
			return i
		}
	}
	return -1
}

// startAll starts every member at once: containers take a moment each, and a
// member may wait for its peers.
func (c *Cluster) startAll() {
	c.t.Helper()
	addrs := make([]string, len(c.servers))
	errs := make([]error, len(c.servers))
	var wg sync.WaitGroup
	for i, s := range c.servers {
		wg.Go(func() { addrs[i], errs[i] = s.backend.start() })
	}
	wg.Wait()
	for i, s := range c.servers {
		if errs[i] != nil {
			c.t.Fatalf("natstest: start cluster member %s: %v", s.name, errs[i])
		}
		s.started(addrs[i])
	}
}

// URLs returns every member's client URL, comma-separated, as
// natsclient.NewClient takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.servers) }

// Server returns member i (0-based), for faults and inspection.
func (c *Cluster) Server(i int) *Server { return c.servers[i] }

// MetaLeader returns the index of the JetStream meta leader as a running
// member reports it, or -1 when none knows of one.
func (c *Cluster) MetaLeader() int {
	for _, s := range c.servers {
		if !s.running {
			continue
		}
		info, err := s.backend.jsz(&server.JSzOptions{})
		if err != nil || info.Meta == nil || info.Meta.Leader == "" {
			continue
		}
		if i := c.index(info.Meta.Leader); i >= 0 && c.servers[i].running {
			return i
		}
	}
	return -1
}

// StreamLeader returns the index of the member leading stream in account
// ("$G" is the default account of a server without accounts), or -1 when
// no running member knows of one. A Key-Value bucket B is the stream KV_B.
func (c *Cluster) StreamLeader(account, stream string) int {
	for _, s := range c.servers {
		if !s.running {
			continue
		}
		info, err := s.backend.jsz(&server.JSzOptions{Accounts: true, Streams: true})
		if err != nil {
			continue
		}
		for _, acc := range info.AccountDetails {
			if acc.Name != account && acc.Id != account {
				continue
			}
			for _, st := range acc.Streams {
				if st.Name != stream || st.Cluster == nil || st.Cluster.Leader == "" {
					continue
				}
				if i := c.index(st.Cluster.Leader); i >= 0 && c.servers[i].running {
					return i
				}
			}
		}
	}
	return -1
}

// WaitForMetaLeader waits until a running member is the meta leader and
// returns its index; the test fails if none is elected within 30s.
func (c *Cluster) WaitForMetaLeader() int {
	c.t.Helper()
	return c.waitFor("a JetStream meta leader", c.MetaLeader)
}

// WaitForStreamLeader waits until stream in account has a leader among the
// running members and returns its index; the test fails after 30s.
func (c *Cluster) WaitForStreamLeader(account, stream string) int {
	c.t.Helper()
	return c.waitFor(fmt.Sprintf("a leader of stream %s in account %s", stream, account),
		func() int { return c.StreamLeader(account, stream) })
}

// Place runs create, a call that creates a replicated stream or Key-Value
// bucket, again until the cluster places it, and returns its last error. The
// meta leader places only on members it has heard from lately: on a loaded
// machine, and after a member restarts, it may count a member offline for a
// moment even after NewCluster saw it place a stream, and answer "no
// suitable peers for placement" (error code 10005). Place retries that
// answer alone, for up to 30s; any other error, or none, returns at once.
func (c *Cluster) Place(create func() error) error {
	var err error
	poll(func() bool {
		err = create()
		return !noSuitablePeers(err)
	})
	return err
}

// LastMsg returns the last message on subject in stream as the stream's
// leader holds it, for a test's final check of a replicated stream or
// Key-Value bucket (bucket B is stream KV_B; its key K, subject $KV.B.K).
// A bucket's reads are direct gets, which any replica that is nearly current
// may answer, a few revisions behind the leader; LastMsg asks the JetStream
// API instead, which the leader answers. It waits up to 30s for a leader and
// fails the test if none answers; a subject without messages is an error.
func (c *Cluster) LastMsg(stream, subject string) *nats.RawStreamMsg {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatalf("natstest: LastMsg: connect: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(5 * time.Second))
	if err != nil {
		c.t.Fatalf("natstest: LastMsg: %v", err)
	}
	var (
		m       *nats.RawStreamMsg
		lastErr error
	)
	done := poll(func() bool {
		// Without the DirectGet option, nats.go asks $JS.API.STREAM.MSG.GET.
		m, lastErr = js.GetLastMsg(stream, subject)
		return lastErr == nil || errors.Is(lastErr, nats.ErrMsgNotFound) || errors.Is(lastErr, nats.ErrStreamNotFound)
	})
	if !done || lastErr != nil {
		c.t.Fatalf("natstest: last message on %s in stream %s: %v", subject, stream, lastErr)
	}
	return m
}

// noSuitablePeersCode is nats-server's JSClusterNoPeersErr.
const noSuitablePeersCode = 10005

// noSuitablePeers reports whether err is the server's "no suitable peers for
// placement", from either of nats.go's JetStream APIs.
func noSuitablePeers(err error) bool {
	if legacy := (*nats.APIError)(nil); errors.As(err, &legacy) {
		return legacy.ErrorCode == noSuitablePeersCode
	}
	apiErr := (*jetstream.APIError)(nil)
	return errors.As(err, &apiErr) && apiErr.ErrorCode == noSuitablePeersCode
}

// waitFor polls leader until it names a member, for up to clusterReady.
func (c *Cluster) waitFor(what string, leader func() int) int {
	c.t.Helper()
	i := -1
	if !poll(func() bool { i = leader(); return i >= 0 }) {
		c.t.Fatalf("natstest: no %s within %v", what, clusterReady)
	}
	return i
}

// poll calls try every 50ms until it reports done, for up to clusterReady,
// and reports whether it did: what a cluster does next (an election, a peer
// coming back) announces itself to no one outside it.
func poll(try func() (done bool)) bool {
	deadline := time.Now().Add(clusterReady)
	for !try() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func (c *Cluster) index(name string) int {
	for i, s := range c.servers {
		if s.name == name {
			return i
		}
	}
	return -1
}

// routeURLs are the embedded member's routes to the others.
func (c *clusterSpec) routeURLs() []*url.URL {
	var urls []*url.URL
	for i, p := range c.ports {
		if i != c.index {
			urls = append(urls, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
		}
	}
	return urls
}

// containerRoutes are the container member's routes to the others, by their
// names on the cluster's network.
func (c *clusterSpec) containerRoutes() []string {
	var routes []string
	for i, name := range c.names {
		if i != c.index {
			routes = append(routes, fmt.Sprintf("nats://%s:%d", name, routePort))
		}
	}
	return routes
}

// freePorts finds n free ports on 127.0.0.1 for routes, which must stay the
// same across restarts since the other members dial them. They are chosen
// below the kernel's ephemeral range: a port the kernel hands out itself
// (listen on port 0) may meanwhile become the local end of any outgoing
// connection on the machine, and then the member cannot bind it (nats-server
// then never reports ready). Outside that range only another listener can
// take it, in the moment between our check and the member's start.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	low := ephemeralLow()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("natstest: no %d free route ports below %d on 127.0.0.1", n, low)
		}
		port := routePortMin + mrand.IntN(low-routePortMin)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken
		}
		defer ln.Close() // held until all are chosen, so none is chosen twice
		ports = append(ports, port)
	}
	return ports
}

// routePortMin is the lowest route port freePorts picks: clear of the
// well-known and commonly configured ports.
const routePortMin = 20000

// ephemeralLow is the start of the kernel's ephemeral port range (Linux
// reports it; 32768, Linux's default, elsewhere or if it cannot be read).
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= routePortMin+100 {
		return fallback
	}
	return low
}

// newNetwork makes a Docker network for one cluster, removed when the test
// ends (after its containers, which t.Cleanup removes first).
func newNetwork(t testing.TB) *testcontainers.DockerNetwork {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	nw, err := network.New(ctx, network.WithLabels(labels(t)))
	if err != nil {
		t.Fatalf("natstest: docker network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
		defer cancel()
		if err := nw.Remove(ctx); err != nil {
			t.Errorf("natstest: remove docker network %s: %v", nw.Name, err)
		}
	})
	return nw
}
