package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	dockercontainer "github.com/moby/moby/api/types/container"
	dockernetwork "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Ports inside the container.
const (
	clientPort  = "4222/tcp"
	monitorPort = "8222/tcp"
	routePort   = 6222
	routeTCP    = "6222/tcp"
	leafPort    = 7422
	leafTCP     = "7422/tcp"
	storeDir    = "/data"
)

// containerTimeout bounds each Docker operation (create, start, stop,
// remove).
const containerTimeout = time.Minute

// Labels on everything the harness creates: natstest=<test name>, so that a
// leak shows in `docker ps -a --filter label=natstest`, and
// natstest.run=<run>, which tells apart test processes running side by side.
const (
	containerLabel = "natstest"
	runLabel       = "natstest.run"
)

// RunEnv names the environment variable that sets the natstest.run label
// (default: random per process), so that a process can find what a test
// process it started created.
const RunEnv = "NATSTEST_RUN"

var runID = sync.OnceValue(func() string {
	if id := os.Getenv(RunEnv); id != "" {
		return id
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
})

// labels are the labels of a container or network made for t.
func labels(t testing.TB) map[string]string {
	return map[string]string{containerLabel: t.Name(), runLabel: runID()}
}

// container runs nats-server in a Docker container. The container is created
// once and then stopped and started (docker stop/start), so its JetStream
// store, in the container's own file system, survives like a disk would. The
// host port Docker maps may change on each start; clients never see it,
// because they talk to the fault proxy, which is pointed at the new port.
type container struct {
	t     testing.TB
	image string
	opts  []testcontainers.ContainerCustomizer
	ctr   *testcontainers.DockerContainer // nil until the first start
	tls   bool
}

// newContainer prepares (but does not start) a container for spec. It
// reports false, after saying why, when spec's server options cannot be
// given to a container: the server then runs embedded.
func newContainer(t testing.TB, spec serverSpec) (*container, bool) {
	t.Helper()
	conf, unsupported := containerConfig(spec)
	if len(unsupported) > 0 {
		t.Logf("natstest: server %s runs embedded: the container backend cannot express these server options: %s",
			spec.name, strings.Join(unsupported, ", "))
		return nil, false
	}
	conf.text += edgeConf(spec)
	image, err := serverImage(spec.cfg)
	if err != nil {
		t.Fatalf("natstest: container image: %v", err)
	}
	args := []string{
		"--name", spec.name,
		"--port", "4222",
		"--http_port", "8222",
		// Advertise the proxy, not the container, in connect_urls: see embedded.go.
		"--client_advertise", spec.advertise,
	}
	if spec.cfg.jetStream || spec.cluster != nil || conf.jetStream {
		args = append(args, "--jetstream", "--store_dir", storeDir)
	}
	if c := spec.cluster; c != nil {
		args = append(args,
			"--cluster_name", c.name,
			"--cluster", fmt.Sprintf("nats://0.0.0.0:%d", routePort),
			"--cluster_advertise", c.gossip, // see Cluster.routeProxies
			"--routes", strings.Join(c.containerRoutes(), ","))
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(quietLogger{}),
		testcontainers.WithExposedPorts(clientPort, monitorPort),
		testcontainers.WithHostConfigModifier(bindLoopback(clientPort, monitorPort)),
		testcontainers.WithLabels(labels(t)),
		// Ready when it accepts clients with JetStream on; checked again on
		// every start. A cluster member is not waited on for a meta leader,
		// which needs the others: NewCluster waits for that.
		testcontainers.WithWaitStrategyAndDeadline(containerTimeout, healthz{}),
	}
	if conf.text != "" {
		args = append(args, "--config", "/natstest/nats.conf")
		opts = append(opts, testcontainers.WithFiles(conf.files()...))
	}
	opts = append(opts, testcontainers.WithCmd(args...))
	if spec.cfg.leafNodes { // the hub-link proxies dial it
		opts = append(opts, testcontainers.WithExposedPorts(leafTCP),
			testcontainers.WithHostConfigModifier(bindLoopback(leafTCP)))
	}
	if c := spec.cluster; c != nil {
		opts = append(opts, network.WithNetwork([]string{spec.name}, c.network),
			testcontainers.WithExposedPorts(routeTCP)) // the route proxies dial it
	}
	return &container{t: t, image: image, opts: opts, tls: conf.tls}, true
}

// bindLoopback publishes ports on the host's loopback interface only, with
// a port Docker picks. Published on every interface (Docker's default), the
// test server, with its unauthenticated monitoring port, would be open to
// the network for as long as the test runs.
func bindLoopback(ports ...string) func(*dockercontainer.HostConfig) {
	return func(hc *dockercontainer.HostConfig) {
		if hc.PortBindings == nil {
			hc.PortBindings = dockernetwork.PortMap{}
		}
		for _, p := range ports {
			hc.PortBindings[dockernetwork.MustParsePort(p)] = []dockernetwork.PortBinding{
				{HostIP: netip.AddrFrom4([4]byte{127, 0, 0, 1})}, // HostPort "": Docker picks one
			}
		}
	}
}

func (c *container) kind() Backend { return Container }

func (c *container) start() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	if c.ctr == nil {
		ctr, err := testcontainers.Run(ctx, c.image, c.opts...)
		c.ctr = ctr // set even on error, so that close removes what was made
		if err != nil {
			if reaperLate {
				err = fmt.Errorf("%w\n(%s)", err, reaperHint)
			}
			return "", err
		}
	} else if err := c.ctr.Start(ctx); err != nil {
		return "", err
	}
	return c.endpoint(ctx, clientPort)
}

// endpoint is host:port of the container's port as mapped on the host now.
func (c *container) endpoint(ctx context.Context, port string) (string, error) {
	host, err := c.ctr.Host(ctx)
	if err != nil {
		return "", err
	}
	mapped, err := c.ctr.MappedPort(ctx, port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, mapped.Port()), nil
}

func (c *container) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	grace := 5 * time.Second // nats-server exits at once on SIGTERM
	if err := c.ctr.Stop(ctx, &grace); err != nil {
		c.t.Errorf("natstest: stop container: %v", err)
	}
}

// kill sends SIGKILL (docker kill) and waits until the container has exited.
func (c *container) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		c.t.Errorf("natstest: kill container: %v", err)
		return
	}
	defer cli.Close()
	if _, err := cli.ContainerKill(ctx, c.ctr.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		c.t.Errorf("natstest: kill container: %v", err)
		return
	}
	for {
		state, err := c.ctr.State(ctx)
		if err != nil {
			c.t.Errorf("natstest: killed container's state: %v", err)
			return
		}
		if !state.Running {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Errorf("natstest: killed container still running after %v", containerTimeout)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *container) leafAddr() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.endpoint(ctx, leafTCP)
}

func (c *container) routeAddr() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.endpoint(ctx, routeTCP)
}

// close removes the container and its volumes, whatever the test's outcome.
func (c *container) close() {
	if c.ctr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	if err := c.ctr.Terminate(ctx); err != nil {
		c.t.Errorf("natstest: remove container %s: %v", c.ctr.GetContainerID(), err)
	}
}

func (c *container) natsServer() *server.Server { return nil }

// jsz asks the monitoring endpoint, which answers with the same report the
// embedded server's Jsz returns.
func (c *container) jsz(opts *server.JSzOptions) (*server.JSInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := c.endpoint(ctx, monitorPort)
	if err != nil {
		return nil, err
	}
	path := fmt.Sprintf("/jsz?accounts=%t&streams=%t&leader_only=%t", opts.Accounts, opts.Streams, opts.LeaderOnly)
	var info server.JSInfo
	if err := monitorGet(ctx, addr, path, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

func (c *container) varz() (*server.Varz, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := c.endpoint(ctx, monitorPort)
	if err != nil {
		return nil, err
	}
	var v server.Varz
	if err := monitorGet(ctx, addr, "/varz", &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// placeable runs the placement probe against the container: no monitoring
// endpoint tells which peers the leader would place on.
func (c *container) placeable(n int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := c.endpoint(ctx, clientPort)
	if err != nil {
		return false
	}
	return placementProbe(ctx, "nats://"+addr, n)
}

// placementProbe creates and deletes an in-memory stream with n replicas (at
// most 5) through a connection of its own to url: the only sure sign that
// the meta leader can place a replicated stream now (a peer it has not yet
// heard from by statsz counts as offline, even when it is routed and
// current). Where the probe cannot connect (the test set up authorization),
// it does not hold the cluster back.
func placementProbe(ctx context.Context, url string, n int) bool {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return true
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	const probe = "natstest_placement_probe"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: probe, Subjects: []string{"_natstest.placement.probe"},
		Replicas: min(n, 5), Storage: jetstream.MemoryStorage,
	}); err != nil {
		return false
	}
	return js.DeleteStream(ctx, probe) == nil
}

// monitorGet reads a monitoring endpoint's JSON answer into v (nil: only the
// status matters).
func monitorGet(ctx context.Context, addr, path string, v any) error {
	url := "http://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No keep-alive and no proxy: an idle connection would leave goroutines
	// behind for goleak to find, and the container is local.
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, res.Status, body)
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// healthz is the wait strategy: the server is ready when its monitoring
// endpoint says it accepts clients with JetStream enabled. (testcontainers'
// own HTTP strategy keeps idle connections open, which goleak would report.)
type healthz struct{}

func (healthz) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	var last error
	for {
		if state, err := target.State(ctx); err == nil && !state.Running {
			return fmt.Errorf("container exited (code %d) before it was ready: %s", state.ExitCode, logTail(ctx, target))
		}
		last = healthzOnce(ctx, target)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last health check: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func healthzOnce(ctx context.Context, target wait.StrategyTarget) error {
	host, err := target.Host(ctx)
	if err != nil {
		return err
	}
	port, err := target.MappedPort(ctx, monitorPort)
	if err != nil {
		return err
	}
	return monitorGet(ctx, net.JoinHostPort(host, port.Port()), "/healthz?js-enabled-only=true", nil)
}

// logTail is the end of the container's log, for an error message.
func logTail(ctx context.Context, target wait.StrategyTarget) string {
	rc, err := target.Logs(ctx)
	if err != nil {
		return "no logs: " + err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// quietLogger drops testcontainers' progress lines; failures come back as
// errors, which the harness reports.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
