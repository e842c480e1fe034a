package natsclient_test

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

// clusterCounter runs writers goroutines, each with its own client on the
// cluster, incrementing one JSON counter n times through UpdateJSON, while
// during (if not nil) runs on the test goroutine once a quarter of the
// increments are done. It returns the increments that reported success and
// those whose outcome was reported unknown. requestTimeout is each client's
// WithTimeout: how long one request may go unanswered.
func clusterCounter(t *testing.T, c *natstest.Cluster, bucket string, writers, n int, requestTimeout time.Duration, during func()) (ok, unknown int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		wg        sync.WaitGroup
		succeeded atomic.Int64
		unknowns  atomic.Int64
		started   = make(chan struct{})
		once      sync.Once
		errs      = make(chan error, writers)
	)
	for g := 0; g < writers; g++ {
		client, err := natsclient.NewClient(c.URLs(), fast(natsclient.WithTimeout(requestTimeout), natsclient.WithMaxReconnects(-1))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close(context.Background()) })
		if err := client.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := client.KeyValueBucket(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		kv := client.NewKVStore(b, func(o *natsclient.KVOptions) {
			o.MaxRetries = 1000
			o.RetryDelay = time.Millisecond
			o.Timeout = 30 * time.Second
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if succeeded.Load()+unknowns.Load() >= int64(writers*n/4) {
					once.Do(func() { close(started) })
				}
				err := kv.UpdateJSON(ctx, "hits", func(m map[string]any) error {
					v, _ := m["n"].(float64)
					m["n"] = v + 1
					return nil
				})
				switch {
				case err == nil:
					succeeded.Add(1)
				case errors.Is(err, natsclient.ErrKVUnknownOutcome):
					unknowns.Add(1)
					t.Logf("unknown outcome: %v", err)
				default:
					errs <- fmt.Errorf("increment %d: %w", i, err)
					return
				}
			}
		}()
	}
	if during != nil {
		natstest.Receive(t, started, waitTimeout, "a quarter of the increments")
		during()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return succeeded.Load(), unknowns.Load()
}

// clusterCount reads the counter as the bucket's stream leader holds it: a
// replica's direct get, which a KVStore's Get is, may lag a few revisions.
func clusterCount(t *testing.T, c *natstest.Cluster, bucket string) int64 {
	t.Helper()
	m := c.LastMsg("KV_"+bucket, "$KV."+bucket+".hits")
	var v struct{ N int64 }
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("counter at revision %d: %v", m.Sequence, err)
	}
	return v.N
}

func newClusterBucket(t *testing.T, c *natstest.Cluster, bucket string) {
	t.Helper()
	client := newClient(t, c.URLs(), fast()...)
	ctx := natstest.Context(t, waitTimeout)
	if err := client.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Place(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), natstest.PlaceAttempt)
		defer cancel()
		_, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 5, Replicas: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.WaitForStreamLeader("$G", "KV_"+bucket)
}

func TestKVNoLostUpdateOnAReplicatedBucket(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	newClusterBucket(t, c, "counter")
	start := time.Now()
	// No fault here: a generous timeout keeps a slow machine from turning a
	// late acknowledgement into an unknown outcome, which this test has no
	// room for (the failover test below counts them).
	ok, unknown := clusterCounter(t, c, "counter", 8, 200, 10*time.Second, nil)
	got := clusterCount(t, c, "counter")
	t.Logf("R3: %d increments (%d unknown) by 8 clients in %v", ok, unknown, time.Since(start).Round(time.Millisecond))
	if ok != 1600 || got != 1600 {
		t.Fatalf("counter = %d with %d successes, want exactly 1600", got, ok)
	}
}

func TestKVStreamLeaderFailoverAppliesEachUpdateOnce(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	newClusterBucket(t, c, "failover")
	var stopped int
	ok, unknown := clusterCounter(t, c, "failover", 4, 100, 2*time.Second, func() {
		stopped = c.WaitForStreamLeader("$G", "KV_failover")
		c.Server(stopped).Stop()
		c.WaitForStreamLeader("$G", "KV_failover")
	})
	got := clusterCount(t, c, "failover")
	t.Logf("stream leader n%d stopped: %d successes, %d unknown outcomes, counter %d", stopped, ok, unknown, got)
	if got < ok || got > ok+unknown {
		t.Fatalf("counter = %d, want between the %d successes and those plus the %d unknown outcomes", got, ok, unknown)
	}
	if unknown == 0 && got != ok {
		t.Fatalf("counter = %d, want exactly the %d successes", got, ok)
	}
}

func TestKVClusterDuplicateWindowSettlesWhatHistoryForgot(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	newClusterBucket(t, c, "settled")
	// The client talks to member 0 only, whose replies we hold; a direct
	// connection to member 1 plays the other writer.
	log := matchLogger{want: "no acknowledgement", lines: make(chan string, 16)}
	client := newClient(t, c.Server(0).URL(), fast(natsclient.WithTimeout(time.Second), natsclient.WithLogger(log))...)
	ctx := natstest.Context(t, waitTimeout)
	if err := client.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	bucket, err := client.KeyValueBucket(ctx, "settled")
	if err != nil {
		t.Fatal(err)
	}
	js := natstest.JetStream(t, c.Server(1).DirectURL())
	// Member 1 may not know the new stream's leader yet: ask again, each
	// time with a deadline of its own.
	var direct jetstream.KeyValue
	eventuallyOK(t, "the bucket through member 1", func() error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var err error
		direct, err = js.KeyValue(actx, "settled")
		return err
	})
	h := &lostAckHarness{srv: c.Server(0), bucket: bucket, noAck: log.lines, direct: direct, counter: "counter",
		kv: client.NewKVStore(bucket, func(o *natsclient.KVOptions) { o.Timeout = 20 * time.Second })}
	// Member 1 learns of the new stream's leader a moment after the create
	// returns: until then a put finds no responders.
	eventuallyOK(t, "the first put through member 1", func() error {
		_, err := direct.Put(ctx, h.counter, []byte(`{"n":0}`))
		return err
	})
	// Our write is stored but its acknowledgement held; six plain puts then
	// push it out of the History of 5. Reading back cannot tell, but the
	// cluster's duplicate window still knows the write's ID.
	err, calls := h.increment(t, h.srv.FreezeReplies, func() {
		natstest.Eventually(t, waitTimeout, "our write stored", func() bool { return h.value(t) == 1 })
		for i := range 6 {
			if _, err := direct.Put(ctx, h.counter, []byte(fmt.Sprintf(`{"n":%d}`, 100+i))); err != nil {
				t.Fatal(err)
			}
		}
	}, nop)
	if err != nil || calls != 1 {
		t.Fatalf("UpdateJSON = %v after %d calls of fn, want success found through the duplicate window", err, calls)
	}
}
