package natstest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// ImageEnv is the environment variable naming the image the Container
// backend runs, when a test does not (WithImage).
const ImageEnv = "NATSTEST_IMAGE"

// serverModule is the module whose version the built image carries.
const serverModule = "github.com/nats-io/nats-server/v2"

// imageRepo is the repository of the images the harness builds, tagged by
// nats-server version: natstest/nats-server:v2.15.2.
const imageRepo = "natstest/nats-server"

// imageBuildTimeout bounds building the image: compiling nats-server takes a
// minute or two on a small machine, once.
const imageBuildTimeout = 10 * time.Minute

var (
	imageMu    sync.Mutex
	imageBuilt = map[string]error{} // tag → outcome, once per process
)

// serverImage returns the image to run: WithImage, else NATSTEST_IMAGE, else
// the locally built one, building it if this machine has none yet.
func serverImage(cfg config) (string, error) {
	if cfg.image != "" {
		return cfg.image, nil
	}
	if img := os.Getenv(ImageEnv); img != "" {
		return img, nil
	}
	version, err := serverVersion()
	if err != nil {
		return "", err
	}
	tag := imageRepo + ":" + version
	imageMu.Lock()
	defer imageMu.Unlock()
	err, done := imageBuilt[tag]
	if !done {
		err = ensureImage(tag, version)
		imageBuilt[tag] = err
	}
	return tag, err
}

// serverVersion is the nats-server version the go.mod of the module being
// tested pins. (A test binary carries no module list of its own to ask.)
func serverVersion() (string, error) {
	goBin, err := goCommand()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goBin, "list", "-m", "-json", serverModule).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", serverModule, err)
	}
	var mod struct {
		Version string
		Replace *struct{ Path string }
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go list -m %s: %w", serverModule, err)
	}
	if mod.Replace != nil {
		return "", fmt.Errorf("%s is replaced (by %s): set %s or WithImage to an image of it",
			serverModule, mod.Replace.Path, ImageEnv)
	}
	if mod.Version == "" {
		return "", fmt.Errorf("go list -m %s: no version", serverModule)
	}
	return mod.Version, nil
}

// goCommand finds the go command, which building the image needs.
func goCommand() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the nats-server image needs the go command: %w (or set %s)", err, ImageEnv)
	}
	return goBin, nil
}

// imageLockPath is the lock file that serialises image builds: in the user's
// own cache directory, where no other user can create it first and hold it
// (a fixed name in the shared temporary directory would let anyone block
// every build).
func imageLockPath() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("natstest: no cache directory for the image build lock: %w", err)
	}
	dir := filepath.Join(cache, "natstest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("natstest: image build lock: %w", err)
	}
	return filepath.Join(dir, "image.lock"), nil
}

// ensureImage builds tag unless the Docker engine has it. A file lock keeps
// test binaries running side by side (go test ./...) from building it twice.
func ensureImage(tag, version string) error {
	ctx, cancel := context.WithTimeout(context.Background(), imageBuildTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return nil
	}
	lockPath, err := imageLockPath()
	if err != nil {
		return err
	}
	unlock, err := lockFile(ctx, lockPath)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		return nil // another process built it while we waited
	}
	dir, err := os.MkdirTemp("", "natstest-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "nats-server")
	if err := buildServer(ctx, bin, version); err != nil {
		return err
	}
	return buildImage(ctx, cli, tag, version, bin)
}

// buildServer compiles nats-server statically. It builds in the current
// directory's module (the test's), so that the version is exactly the one its
// go.mod pins and every module comes from the module cache, offline.
func buildServer(ctx context.Context, out, version string) error {
	goBin, err := goCommand()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, serverModule)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s@%s: %w\n%s", serverModule, version, err, output)
	}
	return nil
}

// dockerfile is the whole image: nats-server alone, from scratch, so that
// building needs no base image from a registry.
const dockerfile = `FROM scratch
COPY nats-server /nats-server
LABEL org.opencontainers.image.title="nats-server %[1]s built by natstest"
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
`

func buildImage(ctx context.Context, cli *testcontainers.DockerClient, tag, version, bin string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := fmt.Sprintf(dockerfile, version)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}); err != nil {
		return err
	}
	if _, err := tw.Write([]byte(df)); err != nil {
		return err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "nats-server", Mode: 0o755, Size: int64(len(data))}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("docker build %s: %w", tag, err)
	}
	defer res.Body.Close()
	return buildOutcome(tag, res.Body)
}

// buildOutcome reads the engine's JSON progress stream to its end, which is
// when the build has finished, and returns the error it reports, if any.
func buildOutcome(tag string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Error != "" {
			return fmt.Errorf("docker build %s: %s", tag, msg.Error)
		}
	}
	return sc.Err()
}
