package natstest

import (
	"context"
	"testing"

	"github.com/moby/moby/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/testcontainers/testcontainers-go"
)

// A container's published ports are reachable from this machine only, and
// its configuration file, which holds the test's passwords, is private.
// Both are read back from the Docker engine, not from what was asked of it.
func TestContainerIsPrivate(t *testing.T) {
	srv := NewServer(t, WithBackend(Container), WithServerOptions(func(o *server.Options) {
		o.Username, o.Password = "edge", "s3cret"
	}))
	ctr, ok := srv.backend.(*container)
	if !ok || ctr.ctr == nil {
		t.Fatalf("server runs on %s, want a container", srv.Backend())
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	id := ctr.ctr.GetContainerID()

	inspect, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	for port, bindings := range inspect.Container.NetworkSettings.Ports {
		for _, b := range bindings {
			published++
			if !b.HostIP.IsLoopback() {
				t.Errorf("port %s published on %s:%s, want the loopback interface only", port, b.HostIP, b.HostPort)
			}
		}
	}
	if published == 0 {
		t.Fatal("the container publishes no port: nothing was checked")
	}
	for _, port := range []string{clientPort, monitorPort} {
		if _, err := ctr.endpoint(ctx, port); err != nil {
			t.Errorf("port %s not reachable through its mapping: %v", port, err)
		}
	}

	stat, err := cli.ContainerStatPath(ctx, id, client.ContainerStatPathOptions{Path: confDir + "/nats.conf"})
	if err != nil {
		t.Fatal(err)
	}
	if mode := stat.Stat.Mode.Perm(); mode != 0o600 {
		t.Errorf("configuration file mode %v, want 0600", mode)
	}
}
