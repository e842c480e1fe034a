package reliability_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// history records operations as clients invoke and complete them: times in
// nanoseconds since the recording began, an unknown outcome returning at
// the end of time (math.MaxInt64), as porcupine takes a call still pending.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the current time on the history's clock.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

// add records one completed operation of client, called at call.
func (h *history) add(client int, in kvInput, call int64, out kvOutput) {
	ret := h.now()
	if out.Result == resultUnknown {
		ret = math.MaxInt64
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// operations returns what was recorded.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// checkTimeout bounds porcupine's search on one history; a search that
// does not finish fails the check (it proves nothing either way).
const checkTimeout = 5 * time.Minute

// checkLinearizable checks ops against model and fails the test if they
// are not linearizable, or if the check cannot finish, after writing
// porcupine's visualization and the history as JSON, which the failure
// message names.
func checkLinearizable(t *testing.T, model porcupine.Model, ops []porcupine.Operation) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(model, ops, checkTimeout)
	if res == porcupine.Ok {
		return
	}
	dir := artifactDir(t)
	vis := filepath.Join(dir, "linearizability.html")
	hist := filepath.Join(dir, "history.json")
	if err := porcupine.VisualizePath(model, info, vis); err != nil {
		t.Errorf("write the visualization: %v", err)
	}
	if err := writeJSON(hist, ops); err != nil {
		t.Errorf("write the history: %v", err)
	}
	what := "NOT linearizable"
	if res == porcupine.Unknown {
		what = fmt.Sprintf("not decided within %v", checkTimeout)
	} else {
		logShortestFailure(t, model, ops)
	}
	t.Fatalf("history of %d operations is %s; visualization: %s; history (JSON): %s", len(ops), what, vis, hist)
}

// logShortestFailure finds, for each partition (key) of ops that is not
// linearizable, the shortest prefix in call order that is not, and logs
// its last operations: the first place where no order explains what the
// clients saw, which the visualization shows in full.
func logShortestFailure(t *testing.T, model porcupine.Model, ops []porcupine.Operation) {
	t.Helper()
	for _, part := range model.Partition(ops) {
		sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
		if porcupine.CheckOperations(model, part) {
			continue
		}
		n := sort.Search(len(part), func(n int) bool { return !porcupine.CheckOperations(model, part[:n+1]) }) + 1
		t.Logf("the first %d of %d operations on this key are not linearizable; the last of them (times in ms):", n, len(part))
		for _, op := range part[max(0, n-15):n] {
			ret := "∞"
			if op.Return != math.MaxInt64 {
				ret = fmt.Sprint(op.Return / 1e6)
			}
			t.Logf("  client %d [%d, %s] %s", op.ClientId, op.Call/1e6, ret, model.DescribeOperation(op.Input, op.Output))
		}
	}
}

// artifactDir is where a failure's files go: the test's artifact directory
// when go test keeps it (-artifacts), else a directory of our own that
// outlives the test.
func artifactDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir, err := os.MkdirTemp("", "natsclient-linearizability-")
	if err != nil {
		t.Fatalf("artifact directory: %v", err)
	}
	return dir
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// mustJSON encodes v, which cannot fail for the workload's values.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// jsonValue decodes a stored value.
func jsonValue(data []byte, v *kvValue) error { return json.Unmarshal(data, v) }
