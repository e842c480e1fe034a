package reliability_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// Story 4: a three-node cluster, a Key-Value bucket with three replicas and
// a history of five, and eight updaters incrementing one counter through
// UpdateJSON. The node the client is connected to is stopped, then the
// bucket's stream leader. The client moves to another node, the updates
// carry on, and the final count is exactly the number of updates that
// reported success: no update applied twice after a lost acknowledgement,
// none lost. (An update that reports ErrKVUnknownOutcome may or may not have
// been applied; the count allows for each such one, and the test reports
// how many there were.)
func TestClusterFailover(t *testing.T) {
	const (
		updaters = 8
		// progress is how many more successful updates each phase waits
		// for: updates go on through each failover, not just before it.
		progress = 40
	)
	cl := natstest.NewCluster(t, 3)
	c := newClient(t, cl.URLs(),
		natsclient.WithReconnectWait(25*time.Millisecond),
		natsclient.WithMaxBackoff(500*time.Millisecond),
		natsclient.WithTimeout(2*time.Second),
		natsclient.WithMaxReconnects(-1),
	)
	ctx := natstest.Context(t, testTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var bucket jetstream.KeyValue
	if err := cl.Place(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), natstest.PlaceAttempt)
		defer cancel()
		bucket, err = c.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "counters", Replicas: 3, History: 5})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	kv := c.NewKVStore(bucket, func(o *natsclient.KVOptions) {
		o.MaxRetries = 100 // eight writers on one key conflict often
		o.Timeout = 15 * time.Second
	})
	if _, err := kv.PutJSON(ctx, "count", map[string]int{"N": 0}); err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)

	var (
		succeeded atomic.Int64
		unknown   atomic.Int64
		advanced  = make(chan struct{}, 1)
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		mu        sync.Mutex
		failures  = map[string]int{}
	)
	for range updaters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			usable := newUsableWaiter(t, c)
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := kv.UpdateJSON(ctx, "count", increment)
				switch {
				case err == nil:
					succeeded.Add(1)
					select {
					case advanced <- struct{}{}:
					default:
					}
					continue
				case errors.Is(err, natsclient.ErrKVUnknownOutcome):
					unknown.Add(1)
				}
				mu.Lock()
				failures[errorKind(err)]++
				mu.Unlock()
				if errors.Is(err, natsclient.ErrCircuitOpen) || errors.Is(err, natsclient.ErrNotConnected) {
					if !usable.wait() {
						return
					}
				}
			}
		}()
	}
	stopUpdaters := func() {
		close(stop)
		finished := make(chan struct{}, 1)
		go func() { wg.Wait(); finished <- struct{}{} }()
		natstest.Await(t, finished, waitTimeout, "updaters to stop", nil)
	}
	// updatesGoOn waits until progress more updates have succeeded.
	updatesGoOn := func(phase string) {
		t.Helper()
		target := succeeded.Load() + progress
		for succeeded.Load() < target {
			select {
			case <-advanced:
			case <-time.After(waitTimeout):
				stopUpdaters()
				t.Fatalf("%s: %d updates succeeded, want %d; failures %v", phase, succeeded.Load(), target, failures)
			}
		}
	}
	updatesGoOn("before any fault")

	// The node the client is connected to: the only one with a client.
	connected := connectedMember(t, cl)
	cl.Server(connected).Stop()
	natstest.Await(t, events, waitTimeout, "connection to the stopped node lost", natstest.ToState(natsclient.StateReconnecting))
	natstest.Await(t, events, waitTimeout, "connected to another node", natstest.ToState(natsclient.StateConnected))
	if now := connectedMember(t, cl); now == connected {
		t.Fatalf("client still on the stopped node %d", connected)
	}
	updatesGoOn(fmt.Sprintf("after stopping node %d, the client's", connected))
	cl.Server(connected).Start()

	leader := cl.WaitForStreamLeader("$G", "KV_counters")
	cl.Server(leader).Stop()
	if next := cl.WaitForStreamLeader("$G", "KV_counters"); next == leader {
		t.Fatalf("stream leader is still the stopped node %d", leader)
	}
	updatesGoOn(fmt.Sprintf("after stopping node %d, the stream leader", leader))
	cl.Server(leader).Start()
	updatesGoOn("with every node back")
	stopUpdaters()

	// Read the count as the leader holds it: the store's Get is a direct get,
	// which a replica just restarted may answer a revision or two behind.
	var count struct{ N int64 }
	last := cl.LastMsg("KV_counters", "$KV.counters.count")
	if err := json.Unmarshal(last.Data, &count); err != nil {
		t.Fatalf("count at revision %d: %v", last.Sequence, err)
	}
	ok, maybe := succeeded.Load(), unknown.Load()
	t.Logf("count %d; %d updates succeeded, %d of unknown outcome; stopped node %d (client's) and %d (leader); failures %v; client %+v",
		count.N, ok, maybe, connected, leader, failures, c.Stats())
	if count.N < ok {
		t.Fatalf("count %d < %d successful updates: an acknowledged update was lost", count.N, ok)
	}
	if count.N > ok+maybe {
		t.Fatalf("count %d > %d successful updates + %d of unknown outcome: an update was applied twice", count.N, ok, maybe)
	}
}

// connectedMember returns the index of the one member the client is
// connected to, waiting for the server to report it.
func connectedMember(t *testing.T, cl *natstest.Cluster) int {
	t.Helper()
	member := -1
	natstest.Eventually(t, waitTimeout, "exactly one member with a client", func() bool {
		member = -1
		for i := range cl.Size() {
			if !cl.Server(i).Running() || cl.Server(i).NumClients() == 0 {
				continue
			}
			if member >= 0 {
				return false
			}
			member = i
		}
		return member >= 0
	})
	return member
}
