package natstest

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// dockerProbeTimeout bounds the question "does a Docker engine answer?".
// A machine without an engine is answered at once (its socket refuses); the
// bound is for an engine that is there but slow, as on a loaded machine, where
// one second was seen to run out, and testcontainers then panics in the test
// instead of reporting an error.
const dockerProbeTimeout = 10 * time.Second

var (
	dockerOnce sync.Once
	dockerErr  error
	// reaperLate is set when testcontainers had read its configuration,
	// with the reaper on, before natstest could turn it off (see
	// disableReaper): every container start then needs the reaper's image.
	reaperLate bool
)

// dockerAvailable reports, once per process, whether a Docker engine
// answers; the error says what is missing.
func dockerAvailable() error {
	dockerOnce.Do(func() {
		disableReaper()
		reaperLate = os.Getenv(ryukDisabledEnv) == "true" && !testcontainers.ReadConfig().RyukDisabled
		localPorts()
		ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
		defer cancel()
		dockerErr = pingDocker(ctx)
	})
	return dockerErr
}

// pingDocker asks the engine at DOCKER_HOST when it is set (testcontainers
// would fall back to the default socket when DOCKER_HOST does not answer,
// hiding the user's choice), else the engine testcontainers finds.
func pingDocker(ctx context.Context) error {
	if os.Getenv("DOCKER_HOST") != "" {
		cli, err := client.New(client.FromEnv)
		if err != nil {
			return err
		}
		defer cli.Close()
		_, err = cli.Ping(ctx, client.PingOptions{})
		return err
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Ping(ctx, client.PingOptions{})
	return err
}

// ryukDisabledEnv is testcontainers' switch for its reaper.
const ryukDisabledEnv = "TESTCONTAINERS_RYUK_DISABLED"

// disableReaper turns testcontainers' reaper (Ryuk) off unless the user chose
// otherwise. Ryuk is an image that would have to be pulled, and no registry
// may be reachable; instead, every container and network the harness makes
// is removed in t.Cleanup, also when the test fails. testcontainers reads its
// configuration once per process, so this works only before its first use;
// a test that used testcontainers earlier gets reaperHint in its errors.
func disableReaper() {
	if _, set := os.LookupEnv(ryukDisabledEnv); !set {
		_ = os.Setenv(ryukDisabledEnv, "true")
	}
}

// reaperHint explains an error of a container start when reaperLate is set.
const reaperHint = "testcontainers read its configuration before natstest could turn its reaper off, " +
	"so every container start needs the reaper's image (testcontainers/ryuk), which may not be pullable here; " +
	"set " + ryukDisabledEnv + "=true in the environment of go test (or ryuk.disabled=true in ~/.testcontainers.properties)"

// localPorts tells testcontainers to reach published ports on localhost when
// the Docker engine runs in this machine's network namespace, which its
// bridge interface (docker0) being visible here shows. testcontainers
// otherwise guesses, inside a container (/.dockerenv), that the engine is
// the container's default gateway, which is wrong for an engine running in
// the same container or VM. TESTCONTAINERS_HOST_OVERRIDE, when set, wins.
func localPorts() {
	if _, set := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); set {
		return
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://") {
		return
	}
	if _, err := net.InterfaceByName("docker0"); err == nil {
		_ = os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
}
