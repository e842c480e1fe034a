package natstest

import (
	"context"
	"encoding/json"
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
	// routes[i][j] is the proxy member i dials to route to member j (nil
	// when i == j): one per ordered pair, so that Isolate can cut exactly
	// the routes of one member. gossip is where every member says it can be
	// routed to; see routeProxies.
	routes [][]*proxy
	gossip *proxy
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
	routes  []string                      // host:port of the route proxies this member dials
	gossip  string                        // host:port advertised for routes; see routeProxies
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
	c.routeProxies(kind, n)
	spec.gossip = c.gossip.addr()
	for i, name := range spec.names {
		member := spec
		member.index = i
		member.routes = nil
		for _, p := range c.routes[i] {
			if p != nil {
				member.routes = append(member.routes, p.addr())
			}
		}
		s := newServer(t, kind, serverSpec{cfg: cfg, name: name, cluster: &member})
		for from := range n {
			if from != i {
				s.routesIn = append(s.routesIn, c.routes[from][i])
			}
		}
		c.servers = append(c.servers, s)
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
// suitable peers for placement" (error code 10005). On a loaded machine an
// answer may also come too late: a create that timed out may or may not have
// happened, and JetStream takes a create of the same configuration again as
// success. Place retries those two answers alone, for up to 30s; any other
// error, or none, returns at once. create must bound each attempt itself
// (a context of its own per call, PlaceAttempt long), or a timed-out attempt
// leaves nothing for the next one.
func (c *Cluster) Place(create func() error) error {
	var err error
	poll(func() bool {
		err = create()
		return !placeAgain(err)
	})
	return err
}

// PlaceAttempt is how long one of Place's attempts may take: a create's
// context, made afresh in each call of create. A loaded machine answers
// within it, and Place's 30s hold a few.
const PlaceAttempt = 10 * time.Second

// placeAgain reports whether Place makes another attempt after err: the
// cluster could not place the stream yet, or the answer came too late.
func placeAgain(err error) bool {
	return noSuitablePeers(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
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

// routeURLs are the member's routes to the others: its route proxies.
func (c *clusterSpec) routeURLs() []*url.URL {
	urls := make([]*url.URL, len(c.routes))
	for i, addr := range c.routes {
		urls[i] = &url.URL{Scheme: "nats", Host: addr}
	}
	return urls
}

// containerRoutes are routeURLs as nats-server's --routes flag takes them.
func (c *clusterSpec) containerRoutes() []string {
	routes := make([]string, len(c.routes))
	for i, u := range c.routeURLs() {
		routes[i] = u.String()
	}
	return routes
}

// routeProxies makes a route proxy for every ordered pair of members, and
// the gossip sink. nats-server gossips each member's advertised route
// address to the others, which dial it when they have no route to that
// member yet (after a partition heals, say); there is no option to turn
// gossip off. Were the advertised address a real route proxy, such a route
// would run through the proxy of another pair and outlive a later Isolate.
// So every member is given every route explicitly, and advertises the
// gossip sink, a proxy that resets every connection: a gossiped route fails
// once (nats-server does not retry those) and the explicit ones, which it
// retries forever, carry the cluster. Container members reach the proxies
// on the host through the Docker bridge.
func (c *Cluster) routeProxies(kind Backend, n int) {
	c.t.Helper()
	host := "127.0.0.1"
	if kind == Container {
		var err error
		if host, err = dockerBridgeIP(); err != nil {
			c.t.Fatalf("natstest: route proxies for containers: %v", err)
		}
	}
	listen := func() *proxy {
		p, err := listenProxy(host)
		if err != nil {
			c.t.Fatalf("natstest: route proxy: %v", err)
		}
		c.t.Cleanup(p.close)
		return p
	}
	c.gossip = listen() // its upstream stays "": it refuses everything
	c.routes = make([][]*proxy, n)
	for i := range n {
		c.routes[i] = make([]*proxy, n)
		for j := range n {
			if i != j {
				c.routes[i][j] = listen()
			}
		}
	}
}

// dockerBridgeIP is the host's address on the Docker bridge (docker0),
// which containers on any bridge network reach the host by.
func dockerBridgeIP() (string, error) {
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		return "", fmt.Errorf("no docker0 interface: the Docker engine must run on this host: %w", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("docker0 has no IPv4 address")
}

// Isolate cuts member i off from the other members, in both directions: its
// routes are reset and new ones refused until Heal, as in a network
// partition with i alone on one side. Clients keep reaching every member,
// the isolated one too (what a client does there is the point of such a
// test). The member keeps running.
func (c *Cluster) Isolate(i int) {
	for j := range c.servers {
		if j != i {
			c.routes[i][j].refuse()
			c.routes[j][i].refuse()
		}
	}
}

// Heal restores every route Isolate cut; the members reconnect on their
// own (nats-server retries a configured route about once a second).
func (c *Cluster) Heal() {
	for _, row := range c.routes {
		for _, p := range row {
			if p != nil {
				p.admit()
			}
		}
	}
}

// StepDownStream asks the leader of stream (a Key-Value bucket B is stream
// KV_B) to step down, through a connection of its own to every member, and
// returns the server's refusal, if any; another member is then elected.
func (c *Cluster) StepDownStream(stream string) error {
	nc, err := nats.Connect(c.URLs(), nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	msg, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, 5*time.Second)
	if err != nil {
		return err
	}
	var res struct {
		Success bool `json:"success"`
		Error   *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &res); err != nil {
		return fmt.Errorf("step-down of stream %s: %w", stream, err)
	}
	if res.Error != nil {
		return fmt.Errorf("step-down of stream %s: %s (code %d, error code %d)",
			stream, res.Error.Description, res.Error.Code, res.Error.ErrCode)
	}
	if !res.Success {
		return fmt.Errorf("step-down of stream %s: not done", stream)
	}
	return nil
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
