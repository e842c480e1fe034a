package natstest

import (
	"flag"
	"os"
	"sync"
	"testing"
)

// Backend is where a Server runs.
type Backend string

// The backends.
const (
	// Embedded runs nats-server in the test process: it starts in
	// milliseconds and needs nothing but Go.
	Embedded Backend = "embedded"
	// Container runs nats-server in a Docker container through
	// testcontainers-go. Without a Docker engine the test is skipped, saying
	// so. See WithImage for the image.
	Container Backend = "container"
	// Auto is Container when a Docker engine answers, Embedded otherwise.
	Auto Backend = "auto"
)

// BackendEnv is the environment variable that chooses the backend when a
// test does not (WithBackend): "embedded", "container" or "auto".
const BackendEnv = "NATSTEST_BACKEND"

// defaultBackend applies when neither WithBackend nor NATSTEST_BACKEND
// chooses: a container when a Docker engine answers, the embedded server
// otherwise. Tests that read state events after a container Restart (one to
// three seconds) read them as they come or await only the return to
// Connected, which a lagging subscriber still sees.
const defaultBackend = Auto

var (
	autoOnce       sync.Once // Auto says once per process what it chose and why
	fuzzWorkerOnce sync.Once // a fuzz worker says once why it runs embedded
	reaperOnce     sync.Once // the container backend says once that the reaper is on
)

// resolveBackend turns the configured or environment choice into Embedded or
// Container. It skips the test when Container is asked for and no Docker
// engine answers, and runs a fuzz worker's servers embedded.
func resolveBackend(t testing.TB, cfg config) Backend {
	t.Helper()
	b := chooseBackend(t, cfg)
	if b == Container && fuzzWorker() {
		fuzzWorkerOnce.Do(func() {
			t.Logf("natstest: this fuzz worker runs its servers embedded: go test stops a worker " +
				"one second after fuzzing ends, before a container could be removed")
		})
		return Embedded
	}
	if b == Container && reaperLate {
		reaperOnce.Do(func() { t.Logf("natstest: %s", reaperHint) })
	}
	return b
}

// fuzzWorker reports whether this process is a worker of `go test -fuzz`.
// When fuzzing ends the coordinator gives each worker one second to exit
// and then interrupts it, so t.Cleanup may never run there: a container the
// worker started would outlive it (testcontainers' reaper, which would catch
// it, is off, see disableReaper). An in-process server dies with the process.
// The coordinator, which runs the seed corpus, exits normally and keeps the
// chosen backend.
func fuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// chooseBackend is resolveBackend before the fuzz worker rule.
func chooseBackend(t testing.TB, cfg config) Backend {
	t.Helper()
	b := cfg.backend
	if b == "" {
		b = Backend(os.Getenv(BackendEnv))
	}
	if b == "" {
		b = defaultBackend
	}
	switch b {
	case Embedded:
		return Embedded
	case Container:
		if err := dockerAvailable(); err != nil {
			t.Skipf("natstest: container backend asked for, but no Docker engine answers: %v", err)
		}
		return Container
	case Auto:
		err := dockerAvailable()
		autoOnce.Do(func() {
			if err != nil {
				t.Logf("natstest: backend auto: using embedded, no Docker engine answers: %v", err)
			} else {
				t.Logf("natstest: backend auto: using container, a Docker engine answers")
			}
		})
		if err != nil {
			return Embedded
		}
		return Container
	default:
		t.Fatalf("natstest: unknown backend %q (from WithBackend or %s): want %q, %q or %q",
			b, BackendEnv, Embedded, Container, Auto)
		return ""
	}
}

// newBackend makes the backend of one server; tls reports whether clients
// must speak TLS to it.
func newBackend(t testing.TB, kind Backend, spec serverSpec) (backend, bool) {
	t.Helper()
	if kind == Container {
		if c, ok := newContainer(t, spec); ok {
			return c, c.tls
		}
	}
	e := newEmbedded(t, spec)
	return e, e.opts.TLSConfig != nil
}
