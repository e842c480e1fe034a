package natstest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/testcontainers/testcontainers-go"
)

// helperEnv makes TestHelperProcess do its work: the tests below run this
// test binary again with a chosen environment, to see what a test using the
// harness sees.
const helperEnv = "NATSTEST_HELPER"

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper run by other tests in a child process")
	}
	start := time.Now()
	defer func() { fmt.Printf("helper-elapsed=%s\n", time.Since(start)) }()
	switch mode {
	case "server":
		srv := natstest.NewServer(t)
		fmt.Printf("helper-backend=%s\n", srv.Backend())
	case "late-config":
		// A test that used testcontainers before natstest: its
		// configuration, reaper on, is read and kept for the process.
		testcontainers.ReadConfig()
		srv := natstest.NewServer(t, natstest.WithBackend(natstest.Container))
		fmt.Printf("helper-backend=%s\n", srv.Backend())
	case "fail":
		natstest.NewServer(t, natstest.WithJetStream())
		natstest.NewCluster(t, 2)
		t.Fatal("deliberate failure after starting a server and a cluster")
	}
}

// runHelper runs TestHelperProcess with mode and the extra environment. It
// does not pass on TESTCONTAINERS_RYUK_DISABLED, which natstest may have set
// in this process: the child decides for itself.
func runHelper(t *testing.T, mode string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TESTCONTAINERS_RYUK_DISABLED=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append(env, helperEnv+"="+mode)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func helperValue(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + key + `=(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("helper printed no %s:\n%s", key, out)
	}
	return m[1]
}

const noDocker = "DOCKER_HOST=unix:///nonexistent/docker.sock"

func TestContainerBackendWithoutDockerSkipsWithinASecond(t *testing.T) {
	out, err := runHelper(t, "server", noDocker, natstest.BackendEnv+"=container")
	if err != nil {
		t.Fatalf("helper failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "no Docker engine answers") {
		t.Fatalf("want a skip saying no Docker engine answers, got:\n%s", out)
	}
	elapsed, err := time.ParseDuration(helperValue(t, out, "helper-elapsed"))
	if err != nil {
		t.Fatal(err)
	}
	if elapsed > time.Second {
		t.Fatalf("skip took %v, want under a second", elapsed)
	}
}

func TestAutoBackendWithoutDockerFallsBackToEmbedded(t *testing.T) {
	out, err := runHelper(t, "server", noDocker, natstest.BackendEnv+"=auto")
	if err != nil {
		t.Fatalf("helper failed: %v\n%s", err, out)
	}
	if got := helperValue(t, out, "helper-backend"); got != string(natstest.Embedded) {
		t.Fatalf("auto without Docker chose %s, want %s", got, natstest.Embedded)
	}
	if !strings.Contains(out, "backend auto: using embedded, no Docker engine answers") {
		t.Fatalf("auto did not say why it chose embedded:\n%s", out)
	}
}

func TestUnknownBackendFailsClearly(t *testing.T) {
	out, err := runHelper(t, "server", natstest.BackendEnv+"=kubernetes")
	if err == nil {
		t.Fatalf("helper passed with an unknown backend:\n%s", out)
	}
	if !strings.Contains(out, `unknown backend "kubernetes"`) {
		t.Fatalf("want an error naming the unknown backend, got:\n%s", out)
	}
}

func TestContainersAndNetworksAreRemovedWhenATestFails(t *testing.T) {
	natstest.NewServer(t, natstest.WithBackend(natstest.Container)) // skips without Docker
	run := fmt.Sprintf("removal-%d", time.Now().UnixNano())
	out, err := runHelper(t, "fail", natstest.BackendEnv+"=container", natstest.RunEnv+"="+run)
	if err == nil || !strings.Contains(out, "deliberate failure") {
		t.Fatalf("helper should have failed deliberately, got %v:\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	label := client.Filters{}.Add("label", "natstest.run="+run)
	ctrs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: label})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs.Items {
		t.Errorf("container %s (%s) left behind by a failed test", c.ID[:12], c.State)
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: label})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets.Items {
		t.Errorf("network %s left behind by a failed test", n.Name)
	}
}

func TestServerOptionsApplyOnEitherBackend(t *testing.T) {
	srv := natstest.NewServer(t, natstest.WithServerOptions(func(o *server.Options) {
		o.MaxPayload = 4096
		o.Username, o.Password = "edge", "s3cret"
	}))
	if _, err := nats.Connect(srv.URL(), nats.UserInfo("edge", "wrong")); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with a wrong password: err = %v, want %v", err, nats.ErrAuthorization)
	}
	nc := dial(t, srv.URL(), nats.UserInfo("edge", "s3cret"))
	if got := nc.MaxPayload(); got != 4096 {
		t.Fatalf("MaxPayload() = %d, want 4096 (backend %s)", got, srv.Backend())
	}
}

func TestServerOptionsAContainerCannotTakeRunEmbedded(t *testing.T) {
	srv := natstest.NewServer(t, natstest.WithBackend(natstest.Auto),
		natstest.WithServerOptions(func(o *server.Options) { o.MaxConn = 7 }))
	if srv.Backend() != natstest.Embedded {
		t.Fatalf("server with MaxConn set runs on %s, want %s", srv.Backend(), natstest.Embedded)
	}
	v, err := srv.NATSServer().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.MaxConn != 7 {
		t.Fatalf("MaxConn = %d, want 7", v.MaxConn)
	}
}

// A test that used testcontainers before natstest has its reaper on for the
// whole process, and the reaper's image may not be pullable (it is not on
// this machine): the harness says what happened and what to set.
func TestReaperLeftOnByAnEarlierUseIsExplained(t *testing.T) {
	natstest.NewServer(t, natstest.WithBackend(natstest.Container)) // skips without Docker
	run := fmt.Sprintf("late-%d", time.Now().UnixNano())
	out, err := runHelper(t, "late-config", natstest.RunEnv+"="+run)
	if !strings.Contains(out, "testcontainers read its configuration before natstest") ||
		!strings.Contains(out, "TESTCONTAINERS_RYUK_DISABLED=true") {
		t.Fatalf("helper (err %v) did not explain the reaper being on:\n%s", err, out)
	}
	if err != nil && (!strings.Contains(out, "natstest: start server") ||
		strings.Count(out, "testcontainers read its configuration before natstest") < 2) {
		t.Fatalf("helper failed (%v), but not at the container start with the explanation in its error:\n%s", err, out)
	}
	t.Logf("helper: err %v; reaper image pullable: %t", err, err == nil)
}
