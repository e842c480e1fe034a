package natstest

import (
	"flag"
	"testing"
)

// A fuzz worker is stopped too abruptly to remove a container (see
// fuzzWorker), so whatever asked for one, it runs its servers embedded; a
// process that is not a worker keeps the container it asked for. The worker
// is simulated by setting the flag go test -fuzz passes to it.
func TestFuzzWorkerRunsItsServersEmbedded(t *testing.T) {
	if err := dockerAvailable(); err != nil {
		t.Skipf("the container backend needs a Docker engine: %v", err)
	}
	cfg := newConfig([]Option{WithBackend(Container)})
	if got := resolveBackend(t, cfg); got != Container {
		t.Fatalf("outside a fuzz worker, WithBackend(Container) resolved to %s", got)
	}

	worker := flag.Lookup("test.fuzzworker")
	if worker == nil {
		t.Fatal("the testing package registers no -test.fuzzworker flag: fuzzWorker cannot tell a worker")
	}
	if err := worker.Value.Set("true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Value.Set("false") })
	for _, b := range []Backend{Container, Auto} {
		if got := resolveBackend(t, newConfig([]Option{WithBackend(b)})); got != Embedded {
			t.Errorf("in a fuzz worker, WithBackend(%s) resolved to %s, want %s", b, got, Embedded)
		}
	}
}
