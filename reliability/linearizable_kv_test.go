package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// Issue 12: the KVStore's promises checked the way etcd's robustness tests
// check etcd. Clients run a mixed workload on a few keys of an R3 bucket
// while the nemesis kills, freezes, cuts off and partitions members and
// makes the stream's leader step down; every operation is recorded with
// its invocation, response and outcome, and porcupine checks that each
// key's history is linearizable (see linearizable_model_test.go for the
// model). An update applied twice after a lost acknowledgement, a write
// reported refused that was stored, a read of a value no write left: each
// makes a history no order of the operations explains.
//
// The bucket's reads go to the stream's leader (its stream has AllowDirect
// off): with direct gets, the Key-Value default, any replica answers, a few
// revisions behind the leader, and such reads are not linearizable by
// design; that is the server's read path, not a promise of this client.
func TestLinearizableKV(t *testing.T) {
	const (
		clients = 5
		keys    = 3
		bucket  = "lin"
	)
	seed := runSeed(t)
	budget := runBudget(t) * 2 / 3
	cl := natstest.NewCluster(t, 3)
	ctx := natstest.Context(t, testTimeout)
	admin := newLinClient(t, cl)
	if err := cl.Place(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), natstest.PlaceAttempt)
		defer cancel()
		_, err := admin.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: bucket, Replicas: 3, History: 16})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	readsFromLeader(t, ctx, admin, "KV_"+bucket)

	h := newHistory()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	lost := &lostAcks{}
	for id := range clients {
		c := newLinClient(t, cl, natsclient.WithLogger(lost))
		b, err := c.KeyValueBucket(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		kv := c.NewKVStore(b, func(o *natsclient.KVOptions) {
			o.MaxRetries = 20
			o.Timeout = 5 * time.Second
		})
		w := &kvWorker{id: id, kv: kv, h: h, r: childRand(seed, id+1), keys: keys,
			revs: map[string]uint64{}, usable: newUsableWaiter(t, c)}
		wg.Go(func() { w.run(stop) })
	}
	n := newNemesis(t, cl, childRand(seed, 0), "KV_"+bucket)
	n.run(time.Now().Add(budget))
	close(stop)
	wg.Wait()

	ops := h.operations()
	counts := map[string]int{}
	for _, op := range ops {
		counts[op.Output.(kvOutput).Result]++
	}
	unknown := counts[resultUnknown]
	t.Logf("operations checked: %d (%v); unknown outcomes: %d (%.2f%%); writes that lost their acknowledgement: %d; faults: %s",
		len(ops), counts, unknown, 100*float64(unknown)/float64(max(len(ops), 1)), lost.n.Load(), n.report())
	if counts[resultOK] < 50 {
		t.Fatalf("only %d operations succeeded: the workload made too little progress to prove anything", counts[resultOK])
	}
	checkLinearizable(t, kvModel, ops)
}

// newLinClient connects a client to every member, closed when the test ends.
func newLinClient(t *testing.T, cl *natstest.Cluster, opts ...natsclient.Option) *natsclient.Client {
	t.Helper()
	c := newClient(t, cl.URLs(), append([]natsclient.Option{
		natsclient.WithReconnectWait(25 * time.Millisecond),
		natsclient.WithMaxBackoff(500 * time.Millisecond),
		natsclient.WithTimeout(time.Second),
		natsclient.WithMaxReconnects(-1),
	}, opts...)...)
	if err := c.Connect(natstest.Context(t, testTimeout)); err != nil {
		t.Fatal(err)
	}
	return c
}

// lostAcks counts the writes whose acknowledgement the store reports lost
// (its log says so before it reads back what was stored): how often the
// run exercised the exactly-once path.
type lostAcks struct{ n atomic.Int64 }

func (l *lostAcks) Printf(format string, v ...any) {
	if strings.Contains(fmt.Sprintf(format, v...), "no acknowledgement") {
		l.n.Add(1)
	}
}

// readsFromLeader turns direct gets off on stream, so that reads are
// answered by its leader.
func readsFromLeader(t *testing.T, ctx context.Context, c *natsclient.Client, stream string) {
	t.Helper()
	js, err := c.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("turn direct gets off on %s: %v", stream, err)
	}
}

// kvWorker is one client of the KV workload.
type kvWorker struct {
	id     int
	kv     *natsclient.KVStore
	h      *history
	r      *rand.Rand
	keys   int
	seq    int
	revs   map[string]uint64 // the latest revision this client saw, by key
	usable *usableWaiter
}

// keyEpoch is how long the workload uses one set of keys.
const keyEpoch = time.Minute

// opTimeout bounds one operation; the store's own Timeout is shorter.
const opTimeout = 10 * time.Second

func (w *kvWorker) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if out := w.step(); out.Result == resultFailed && !w.usable.wait() {
			return
		}
	}
}

// step runs one random operation and records it.
func (w *kvWorker) step() kvOutput {
	// Keys change every keyEpoch, so that each key's history, which
	// porcupine searches as one, stays about a minute long in a soak.
	epoch := time.Duration(w.h.now()) / keyEpoch
	key := fmt.Sprintf("e%d-k%d", epoch, w.r.IntN(w.keys))
	w.seq++
	value := kvValue{N: w.r.IntN(1000), Tag: fmt.Sprintf("c%d-%d", w.id, w.seq)}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var (
		in  = kvInput{Key: key}
		out kvOutput
		rev uint64
		err error
	)
	call := w.h.now()
	switch p := w.r.IntN(100); {
	case p < 30:
		in.Op = opGet
		var entry jetstream.KeyValueEntry
		if entry, err = w.kv.Get(ctx, key); err == nil {
			rev = entry.Revision()
			if jerr := jsonValue(entry.Value(), &out.Value); jerr != nil {
				out.Err = jerr.Error()
			}
		}
	case p < 45:
		in.Op, in.Value = opPut, value
		rev, err = w.kv.PutJSON(ctx, key, value)
	case p < 55:
		in.Op, in.Value = opCreate, value
		rev, err = w.kv.Create(ctx, key, mustJSON(value))
	case p < 80:
		in.Op, in.Value = opUpdate, value
		in.Expect = w.revs[key]
		if w.r.IntN(5) == 0 { // now and then a revision that cannot be current
			in.Expect += uint64(w.r.IntN(3)) + 1
		}
		rev, err = w.kv.Update(ctx, key, mustJSON(value), in.Expect)
	default:
		in.Op = opIncrement
		err = w.kv.UpdateJSON(ctx, key, func(obj map[string]any) error {
			n, _ := obj["n"].(float64)
			obj["n"] = n + 1
			return nil
		})
	}
	out.Result = resultOf(in.Op, err)
	if err != nil {
		out.Err = err.Error()
	} else {
		out.Rev = rev
		if rev > w.revs[key] {
			w.revs[key] = rev
		}
	}
	if in.Op == opGet && out.Result == resultFailed {
		return out // a failed read says nothing and changes nothing
	}
	w.h.add(w.id, in, call, out)
	return out
}

// resultOf classifies an operation's error as the client's promises do:
// ErrKVUnknownOutcome is the only error after which a write may have been
// stored; a conflict says the key was elsewhere; any other error says the
// write was not stored.
func resultOf(op string, err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, natsclient.ErrKVUnknownOutcome):
		return resultUnknown
	case op == opGet && natsclient.IsKVNotFoundError(err):
		return resultNotFound
	case op != opGet && busyRefusal(err):
		return resultBusy
	case op != opGet && natsclient.IsKVConflictError(err):
		return resultConflict
	}
	return resultFailed
}

// busyRefusalCode is nats-server's JSStreamWrongLastSequenceConstantErr.
const busyRefusalCode = 10164

// busyRefusal reports whether err is the conflict a clustered stream's
// leader gives when another write to the same subject is proposed but not
// yet applied. The client rightly reports it as a revision mismatch (the
// write was not stored), but it is no statement about the key's revision:
// a read right after it still sees the revision the write expected (the
// other write is not applied yet), and the other write may yet fail. The
// model takes it as "not stored" and nothing more; see docs/reliability.md.
func busyRefusal(err error) bool {
	apiErr := (*jetstream.APIError)(nil)
	return errors.As(err, &apiErr) && apiErr.ErrorCode == busyRefusalCode
}
