package natsclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// newBucket creates a bucket on tc's server and a KVStore on it.
func newBucket(t *testing.T, tc *natstest.TestClient, cfg jetstream.KeyValueConfig, opts ...func(*natsclient.KVOptions)) (jetstream.KeyValue, *natsclient.KVStore) {
	t.Helper()
	bucket, err := tc.Client.CreateKeyValueBucket(natstest.Context(t, waitTimeout), cfg)
	if err != nil {
		t.Fatalf("CreateKeyValueBucket(%q): %v", cfg.Bucket, err)
	}
	kv := tc.Client.NewKVStore(bucket, opts...)
	if err := kv.Err(); err != nil {
		t.Fatalf("NewKVStore: %v", err)
	}
	return bucket, kv
}

// revisionOf returns key's latest revision and value, read with jetstream's
// own KeyValue so that the store under test is not its own witness.
func revisionOf(t *testing.T, bucket jetstream.KeyValue, key string) (uint64, []byte) {
	t.Helper()
	e, err := bucket.Get(natstest.Context(t, waitTimeout), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return e.Revision(), e.Value()
}

func TestKVStoreReadWriteAndErrors(t *testing.T) {
	// Threshold 1: a single miscounted not-found or conflict would open it.
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "basics", History: 5})

	_, err := kv.Get(ctx, "missing")
	if !errors.Is(err, natsclient.ErrKVKeyNotFound) || !errors.Is(err, jetstream.ErrKeyNotFound) || !natsclient.IsKVNotFoundError(err) {
		t.Fatalf("Get(missing) = %v, want ErrKVKeyNotFound and jetstream.ErrKeyNotFound", err)
	}
	if !strings.Contains(err.Error(), "basics/missing") {
		t.Fatalf("error does not name bucket and key: %v", err)
	}

	rev1, err := kv.Put(ctx, "a", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "a"); err != nil || string(e.Value()) != "one" || e.Revision() != rev1 {
		t.Fatalf("Get(a) = %v, %v; want one at %d", e, err, rev1)
	}

	// Create on an existing key: a conflict matching ours and jetstream's.
	_, err = kv.Create(ctx, "a", []byte("again"))
	if !errors.Is(err, natsclient.ErrKVRevisionMismatch) || !errors.Is(err, jetstream.ErrKeyExists) || !natsclient.IsKVConflictError(err) {
		t.Fatalf("Create(existing) = %v, want ErrKVRevisionMismatch and jetstream.ErrKeyExists", err)
	}
	// Update at a stale revision: likewise, with jetstream.ErrKeyRevisionMismatch.
	rev2, err := kv.Update(ctx, "a", []byte("two"), rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("Update at current revision = %d, %v", rev2, err)
	}
	_, err = kv.Update(ctx, "a", []byte("stale"), rev1)
	if !errors.Is(err, natsclient.ErrKVRevisionMismatch) || !errors.Is(err, jetstream.ErrKeyRevisionMismatch) || !natsclient.IsKVConflictError(err) {
		t.Fatalf("Update(stale) = %v, want ErrKVRevisionMismatch and jetstream.ErrKeyRevisionMismatch", err)
	}
	if rev, v := revisionOf(t, bucket, "a"); rev != rev2 || string(v) != "two" {
		t.Fatalf("after refused writes: %q at %d, want two at %d", v, rev, rev2)
	}

	// Delete, then Create over the delete marker.
	if err := kv.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "a"); !natsclient.IsKVNotFoundError(err) {
		t.Fatalf("Get(deleted) = %v, want not found", err)
	}
	if _, err := kv.Create(ctx, "a", []byte("reborn")); err != nil {
		t.Fatalf("Create over a deleted key: %v", err)
	}

	// JSON helpers.
	type cfg struct {
		Workers int    `json:"workers"`
		Timeout string `json:"timeout"`
	}
	rev, err := kv.PutJSON(ctx, "svc.processor", cfg{Workers: 4, Timeout: "5s"})
	if err != nil {
		t.Fatal(err)
	}
	var got cfg
	if r, err := kv.GetJSON(ctx, "svc.processor", &got); err != nil || r != rev || got.Workers != 4 {
		t.Fatalf("GetJSON = %+v at %d, %v", got, r, err)
	}
	if _, err := kv.PutJSON(ctx, "bad", func() {}); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("PutJSON(func) = %v, want ErrInvalidArgument", err)
	}

	// Watch: the current value, the end-of-initial-values nil, then changes.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := kv.Watch(wctx, "svc.>")
	if err != nil {
		t.Fatal(err)
	}
	if e := natstest.Receive(t, w.Updates(), waitTimeout, "initial value"); e == nil || e.Key() != "svc.processor" {
		t.Fatalf("first watch entry = %v", e)
	}
	if e := natstest.Receive(t, w.Updates(), waitTimeout, "end of initial values"); e != nil {
		t.Fatalf("want the nil marker, got %v", e)
	}
	if _, err := kv.Put(ctx, "svc.other", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if e := natstest.Receive(t, w.Updates(), waitTimeout, "change"); e == nil || e.Key() != "svc.other" {
		t.Fatalf("watched change = %v", e)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "svc.other"); err != nil {
		t.Fatal(err)
	}

	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "a,svc.processor" && strings.Join(keys, ",") != "svc.processor,a" {
		t.Fatalf("Keys = %v", keys)
	}
	_, empty := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "empty"})
	if keys, err := empty.Keys(ctx); err != nil || keys == nil || len(keys) != 0 {
		t.Fatalf("Keys(empty bucket) = %#v, %v; want an empty slice", keys, err)
	}
	if st := tc.Client.Stats(); st.ConsecutiveFailures != 0 || st.BreakerTrips != 0 {
		t.Fatalf("not-found and conflict errors counted against the breaker: %+v", st)
	}
}

func TestKVUpdateJSONMissingOrDeletedKeyIsAnEmptyObject(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "config", History: 5})

	for round, prepare := range []func(){
		func() {},
		func() {
			if err := kv.Delete(ctx, "services.processor"); err != nil {
				t.Fatal(err)
			}
		},
	} {
		prepare()
		calls := 0
		err := kv.UpdateJSON(ctx, "services.processor", func(config map[string]any) error {
			calls++
			if len(config) != 0 {
				t.Errorf("round %d: fn got %v, want an empty object", round, config)
			}
			config["workers"] = 10
			config["timeout"] = "30s"
			return nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("round %d: UpdateJSON = %v after %d calls", round, err, calls)
		}
		_, v := revisionOf(t, bucket, "services.processor")
		if string(v) != `{"timeout":"30s","workers":10}` {
			t.Fatalf("round %d: stored %s", round, v)
		}
	}
}

func TestKVNoLostUpdateUnderContention(t *testing.T) {
	const goroutines, increments = 8, 200
	tc := natstest.NewTestClient(t, natstest.WithKV())
	bucket, _ := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "counter"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var (
		wg        sync.WaitGroup
		conflicts atomic.Int64
		errs      = make(chan error, goroutines)
	)
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		// Each goroutine has its own client and connection.
		c, err := natsclient.NewClient(tc.URL, natsclient.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		kv := c.NewKVStore(bucket, func(o *natsclient.KVOptions) {
			o.MaxRetries = 1000
			o.RetryDelay = time.Millisecond
			o.Timeout = time.Minute
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < increments; i++ {
				calls := 0
				err := kv.UpdateJSON(ctx, "hits", func(m map[string]any) error {
					calls++
					n, _ := m["n"].(float64)
					m["n"] = n + 1
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("increment %d: %w", i, err)
					return
				}
				conflicts.Add(int64(calls - 1))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, v := revisionOf(t, bucket, "hits")
	var got struct{ N int }
	if err := json.Unmarshal(v, &got); err != nil {
		t.Fatal(err)
	}
	if got.N != goroutines*increments {
		t.Fatalf("counter = %d, want exactly %d", got.N, goroutines*increments)
	}
	t.Logf("%d increments by %d clients in %v, %d conflicts retried", goroutines*increments, goroutines,
		time.Since(start).Round(time.Millisecond), conflicts.Load())
}

func TestKVRacingCreatorsOneWinsTheOtherUpdates(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "race"})

	// Both creators read the missing key, then both write: one create wins,
	// the other conflicts and retries as an update on the winner's value.
	var (
		bothRead sync.WaitGroup
		calls    [2]atomic.Int32
		errs     [2]error
		done     sync.WaitGroup
	)
	bothRead.Add(2)
	for i := range 2 {
		done.Add(1)
		go func() {
			defer done.Done()
			errs[i] = kv.UpdateJSON(ctx, "owners", func(m map[string]any) error {
				if calls[i].Add(1) == 1 {
					bothRead.Done()
					bothRead.Wait()
				}
				m[fmt.Sprintf("creator%d", i)] = true
				return nil
			})
		}()
	}
	done.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("UpdateJSON errors: %v, %v", errs[0], errs[1])
	}
	if total := calls[0].Load() + calls[1].Load(); total != 3 {
		t.Fatalf("fn called %d+%d times, want one creator once and the other twice", calls[0].Load(), calls[1].Load())
	}
	if _, v := revisionOf(t, bucket, "owners"); string(v) != `{"creator0":true,"creator1":true}` {
		t.Fatalf("stored %s, want both creators' changes", v)
	}
}

func TestKVUpdateJSONRefusesStoredValuesThatAreNotObjects(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "bad"})
	// null is not among them: it reads as an empty object
	// (TestKVUpdateJSONReadsNullAsAnEmptyObject).
	for _, stored := range []string{`[1,2]`, `not json`, `"text"`, `{"a":`, ``, `nullx`, `7`} {
		if _, err := bucket.Put(ctx, "k", []byte(stored)); err != nil {
			t.Fatal(err)
		}
		rev, _ := revisionOf(t, bucket, "k")
		called := false
		err := kv.UpdateJSON(ctx, "k", func(map[string]any) error { called = true; return nil })
		if err == nil || called {
			t.Fatalf("stored %q: UpdateJSON = %v, fn called %v; want an error before fn", stored, err, called)
		}
		if !strings.Contains(err.Error(), "bad/k") || !strings.Contains(err.Error(), "decode") {
			t.Fatalf("stored %q: error %q does not name the key and the decoding problem", stored, err)
		}
		if r, v := revisionOf(t, bucket, "k"); r != rev || string(v) != stored {
			t.Fatalf("stored %q: now %q at %d, want it untouched at %d", stored, v, r, rev)
		}
		if _, err := natsclient.UpdateJSONAs(ctx, kv, "k", func(*[]string) error { called = true; return nil }); stored == `{"a":` && (err == nil || called) {
			t.Fatalf("UpdateJSONAs on broken JSON = %v, fn called %v", err, called)
		}
	}
}

func TestKVUpdateFunctionErrorIsReturnedAsIsAndNothingWritten(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "fnerr"})
	if _, err := kv.PutJSON(ctx, "k", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	rev, _ := revisionOf(t, bucket, "k")
	errRefused := errors.New("refused by business rule")
	calls := 0
	err := kv.UpdateJSON(ctx, "k", func(m map[string]any) error {
		calls++
		m["n"] = 2
		return fmt.Errorf("validating: %w", errRefused)
	})
	if !errors.Is(err, errRefused) || calls != 1 {
		t.Fatalf("UpdateJSON = %v after %d calls, want the fn error after 1", err, calls)
	}
	if r, v := revisionOf(t, bucket, "k"); r != rev || string(v) != `{"n":1}` {
		t.Fatalf("after fn error: %s at %d, want untouched at %d", v, r, rev)
	}
	if _, err := kv.UpdateWithRetry(ctx, "k", func([]byte) ([]byte, error) { return nil, errRefused }); err != errRefused {
		t.Fatalf("UpdateWithRetry = %v, want the fn error itself", err)
	}
	if st := tc.Client.Stats(); st.ConsecutiveFailures != 0 {
		t.Fatalf("fn errors counted against the breaker: %+v", st)
	}
}

func TestKVUpdateFunctionPanicIsNotSwallowed(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "panic"})
	if _, err := kv.PutJSON(ctx, "k", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	rev, _ := revisionOf(t, bucket, "k")
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the fn's panic", r)
			}
		}()
		_ = kv.UpdateJSON(ctx, "k", func(m map[string]any) error {
			m["n"] = 2
			panic("boom")
		})
		t.Fatal("UpdateJSON returned after fn panicked")
	}()
	if r, v := revisionOf(t, bucket, "k"); r != rev || string(v) != `{"n":1}` {
		t.Fatalf("after fn panic: %s at %d, want untouched at %d", v, r, rev)
	}
}

func TestKVBadInputIsRefusedClearlyAndNeverTripsTheBreaker(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "limits", MaxValueSize: 64})

	for _, key := range []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "ü", "a\nb"} {
		_, err := kv.Put(ctx, key, []byte("x"))
		if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Fatalf("Put(%q) = %v, want ErrInvalidArgument and jetstream.ErrInvalidKey", key, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
			t.Fatalf("error %q does not name the key %q", err, key)
		}
		called := false
		if err := kv.UpdateJSON(ctx, key, func(map[string]any) error { called = true; return nil }); !errors.Is(err, jetstream.ErrInvalidKey) || called {
			t.Fatalf("UpdateJSON(%q) = %v, fn called %v", key, err, called)
		}
	}
	for _, name := range []string{"", "a.b", "a b", "a*", "a/b"} {
		_, err := tc.Client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: name})
		if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidBucketName) {
			t.Fatalf("CreateKeyValueBucket(%q) = %v, want ErrInvalidArgument and jetstream.ErrInvalidBucketName", name, err)
		}
	}

	big := bytes.Repeat([]byte("x"), 65)
	if _, err := kv.Put(ctx, "big", big); !errors.Is(err, natsclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "MaxValueSize of 64") {
		t.Fatalf("Put(65 bytes) = %v, want a MaxValueSize error", err)
	}
	err := kv.UpdateJSON(ctx, "big", func(m map[string]any) error { m["v"] = string(big); return nil })
	if !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("UpdateJSON(too big) = %v", err)
	}
	if keys, err := kv.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("something was written: keys %v, %v", keys, err)
	}
	// The server's own check stands behind ours: a bucket handle from
	// jetstream goes straight to it.
	if _, err := bucket.Put(ctx, "big", big); err == nil {
		t.Fatal("server stored a value over MaxValueSize")
	}
	if st := tc.Client.Stats(); st.ConsecutiveFailures != 0 || st.BreakerTrips != 0 || st.Breaker != natsclient.BreakerClosed {
		t.Fatalf("bad input touched the breaker: %+v", st)
	}
}

func TestKVOptionsAreValidatedNeverReplaced(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "opts"})
	if o := kv.Options(); o.MaxRetries != 3 || o.RetryDelay != 10*time.Millisecond || o.Timeout != 5*time.Second {
		t.Fatalf("defaults = %+v, want 3, 10ms, 5s", o)
	}
	for name, opt := range map[string]func(*natsclient.KVOptions){
		"MaxRetries": func(o *natsclient.KVOptions) { o.MaxRetries = -1 },
		"RetryDelay": func(o *natsclient.KVOptions) { o.RetryDelay = -time.Millisecond },
		"Timeout":    func(o *natsclient.KVOptions) { o.Timeout = -time.Second },
	} {
		bad := tc.Client.NewKVStore(bucket, opt)
		if err := bad.Err(); !errors.Is(err, natsclient.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s negative: Err() = %v, want ErrInvalidOption naming it", name, err)
		}
		if _, err := bad.Put(ctx, "k", nil); !errors.Is(err, natsclient.ErrInvalidOption) {
			t.Fatalf("%s negative: Put = %v, want the option error", name, err)
		}
		if err := bad.UpdateJSON(ctx, "k", func(map[string]any) error { return nil }); !errors.Is(err, natsclient.ErrInvalidOption) {
			t.Fatalf("%s negative: UpdateJSON = %v, want the option error", name, err)
		}
	}
	if err := tc.Client.NewKVStore(nil).Err(); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("NewKVStore(nil).Err() = %v", err)
	}
	if keys, _ := kv.Keys(ctx); len(keys) != 0 {
		t.Fatalf("stores with bad options wrote %v", keys)
	}
}

func TestKVRetriesRunOutWithACountedConflictError(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "contended"},
		func(o *natsclient.KVOptions) { o.MaxRetries = 2; o.RetryDelay = time.Millisecond })
	if _, err := kv.PutJSON(ctx, "k", map[string]int{"n": 0}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := kv.UpdateJSON(ctx, "k", func(m map[string]any) error {
		calls++
		// Another writer gets in between every read and write.
		if _, err := bucket.Put(ctx, "k", []byte(`{"n":100}`)); err != nil {
			t.Error(err)
		}
		m["n"] = 1
		return nil
	})
	if calls != 3 {
		t.Fatalf("fn called %d times, want 3 (MaxRetries 2)", calls)
	}
	if !errors.Is(err, natsclient.ErrKVMaxRetriesExceeded) || !errors.Is(err, natsclient.ErrKVRevisionMismatch) ||
		!errors.Is(err, jetstream.ErrKeyRevisionMismatch) || !natsclient.IsKVConflictError(err) {
		t.Fatalf("err = %v, want ErrKVMaxRetriesExceeded and ErrKVRevisionMismatch", err)
	}
	if !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("error does not say how many attempts: %v", err)
	}
}

func TestKVTimeoutAndContextBoundTheLoop(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "bounded"}, func(o *natsclient.KVOptions) {
		o.MaxRetries = 1 << 20
		o.RetryDelay = 5 * time.Millisecond
		o.Timeout = 300 * time.Millisecond
	})
	interfere := func(m map[string]any) error {
		_, err := bucket.Put(ctx, "k", []byte(`{}`))
		m["x"] = 1
		return err
	}
	start := time.Now()
	err := kv.UpdateJSON(ctx, "k", interfere)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("loop ran %v with a 300ms Timeout", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "KVOptions.Timeout of 300ms") {
		t.Fatalf("err = %v, want the Timeout named, matching context.DeadlineExceeded", err)
	}

	// The caller's ctx ends the loop too, when it ends first.
	kv2 := tc.Client.NewKVStore(bucket, func(o *natsclient.KVOptions) { o.MaxRetries = 1 << 20; o.Timeout = time.Hour })
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = kv2.UpdateJSON(short, "k", interfere)
	if elapsed := time.Since(start); elapsed > 3*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with a 200ms ctx: err = %v after %v", err, elapsed)
	}
}

func TestKVBreakerOpenFailsFast(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(2), natsclient.WithReconnectWait(time.Second), natsclient.WithMaxBackoff(5*time.Second)))
	ctx := natstest.Context(t, waitTimeout)
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "breaker"})
	events := tc.Client.StateChanges(ctx)
	tc.Server.Stop()
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))

	start := time.Now()
	called := false
	err := kv.UpdateJSON(ctx, "k", func(map[string]any) error { called = true; return nil })
	if !errors.Is(err, natsclient.ErrCircuitOpen) || called {
		t.Fatalf("UpdateJSON while open = %v (fn called %v), want ErrCircuitOpen", err, called)
	}
	if _, err := kv.Get(ctx, "k"); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("Get while open = %v", err)
	}
	if _, err := tc.Client.KeyValueBucket(ctx, "breaker"); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("KeyValueBucket while open = %v", err)
	}
	if elapsed := time.Since(start); elapsed > 50*time.Millisecond {
		t.Fatalf("failing fast took %v", elapsed)
	}
}

func TestKVHandlesSurviveRestartAndNewConnection(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithMaxReconnects(0)))
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "durable"})
	increment := func(what string) {
		t.Helper()
		if _, err := natsclient.UpdateJSONAs(ctx, kv, "n", func(v *int) error { *v++; return nil }); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	increment("before")
	events := tc.Client.StateChanges(ctx)

	// MaxReconnects 0: nats.go gives the connection up, the client dials a
	// new one, and the handles must rebind to it.
	tc.Server.Stop()
	natstest.Await(t, events, waitTimeout, "reconnecting", natstest.ToState(natsclient.StateReconnecting))
	tc.Server.Start()
	natstest.Await(t, events, waitTimeout, "connected on a new connection", natstest.ToState(natsclient.StateConnected))
	if n := tc.Client.Stats().Connections; n != 2 {
		t.Fatalf("Connections = %d, want 2", n)
	}
	increment("after a new connection")
	if _, err := bucket.Put(ctx, "raw", []byte("x")); err != nil {
		t.Fatalf("bucket handle after a new connection: %v", err)
	}

	tc.Server.Restart()
	natstest.Await(t, events, waitTimeout, "connected after restart", natstest.ToState(natsclient.StateConnected))
	increment("after a restart")
	var n int
	if _, err := kv.GetJSON(ctx, "n", &n); err != nil || n != 3 {
		t.Fatalf("counter = %d, %v; want 3", n, err)
	}
	if e, err := bucket.Get(ctx, "raw"); err != nil || string(e.Value()) != "x" {
		t.Fatalf("bucket handle after restart: %v, %v", e, err)
	}
}

func TestUpdateJSONAsKeepsStructs(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "typed"})
	type limits struct {
		Workers int      `json:"workers"`
		Tags    []string `json:"tags,omitempty"`
	}
	for i := 1; i <= 3; i++ {
		rev, err := natsclient.UpdateJSONAs(ctx, kv, "limits", func(l *limits) error {
			l.Workers++
			l.Tags = append(l.Tags, fmt.Sprint(i))
			return nil
		})
		if err != nil || rev == 0 {
			t.Fatalf("UpdateJSONAs #%d = %d, %v", i, rev, err)
		}
	}
	var got limits
	if _, err := kv.GetJSON(ctx, "limits", &got); err != nil || got.Workers != 3 || strings.Join(got.Tags, "") != "123" {
		t.Fatalf("stored %+v, %v", got, err)
	}
	if _, err := natsclient.UpdateJSONAs[limits](ctx, nil, "x", nil); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("nil store: %v", err)
	}
}

func TestKVConflictsAreRecognisedByCodeNotText(t *testing.T) {
	for _, code := range []jetstream.ErrorCode{jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant} {
		err := fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: code, Description: "anything at all"})
		if !natsclient.IsKVConflictError(err) {
			t.Fatalf("code %d not recognised as a conflict", code)
		}
	}
	for _, err := range []error{
		errors.New("wrong last sequence: 5"), // text alone is not a conflict
		&jetstream.APIError{Code: 404, ErrorCode: jetstream.JSErrCodeStreamNotFound, Description: "wrong last sequence"},
		nil,
	} {
		if natsclient.IsKVConflictError(err) {
			t.Fatalf("%v taken for a conflict", err)
		}
	}
	if !natsclient.IsKVNotFoundError(jetstream.ErrKeyDeleted) || natsclient.IsKVNotFoundError(jetstream.ErrBucketNotFound) {
		t.Fatal("IsKVNotFoundError misclassifies")
	}
}

func TestKVWatchFollowsTheClientToANewConnection(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithMaxReconnects(0)))
	ctx := natstest.Context(t, waitTimeout)
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "watched", History: 10})
	for _, kv1 := range [][2]string{{"cfg.a", "1"}, {"cfg.z", "0"}} {
		if _, err := kv.Put(ctx, kv1[0], []byte(kv1[1])); err != nil {
			t.Fatal(err)
		}
	}
	w, err := kv.Watch(ctx, "cfg.>")
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string) string {
		t.Helper()
		e := natstest.Receive(t, w.Updates(), waitTimeout, what)
		if e == nil {
			return "<nil>"
		}
		return e.Key() + "=" + string(e.Value())
	}
	if got := next("initial value") + " " + next("second initial value") + " " + next("end of initial values"); got != "cfg.a=1 cfg.z=0 <nil>" {
		t.Fatalf("initial delivery: %s", got)
	}

	tc.RestartServer(waitTimeout)
	// Written before or after the watcher rebound: resuming after the last
	// delivered revision delivers them, once, and nothing earlier again
	// (watching afresh would deliver cfg.z=0 a second time).
	if _, err := kv.Put(ctx, "cfg.b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "cfg.a", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if got := next("change after the new connection") + " " + next("second change"); got != "cfg.b=2 cfg.a=3" {
		t.Fatalf("after a new connection: %s", got)
	}
	select {
	case e := <-w.Updates():
		t.Fatalf("unexpected entry %v", e)
	default:
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.Updates(); ok {
		t.Fatal("Updates not closed after Stop")
	}
}

func TestKVMissingBucketIsReportedAtOnceAndNeverAnUnknownOutcome(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	// A Timeout far beyond what the test allows: waiting for it, rather than
	// knowing the answer, fails the test.
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "gone"}, func(o *natsclient.KVOptions) { o.Timeout = time.Minute })
	rev, err := kv.Put(ctx, "k", []byte(`{"n":1}`)) // bound to the bucket before it goes
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.Client.DeleteKeyValueBucket(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"Get":    func() error { _, err := kv.Get(ctx, "k"); return err },
		"Put":    func() error { _, err := kv.Put(ctx, "k", []byte("v")); return err },
		"Create": func() error { _, err := kv.Create(ctx, "new", []byte("v")); return err },
		"Update": func() error { _, err := kv.Update(ctx, "k", []byte("v"), rev); return err },
		"Delete": func() error { return kv.Delete(ctx, "k") },
		"Keys":   func() error { _, err := kv.Keys(ctx); return err },
		"UpdateJSON": func() error {
			return kv.UpdateJSON(ctx, "k", func(m map[string]any) error { m["n"] = 2; return nil })
		},
		"Watch": func() error {
			w, err := kv.Watch(ctx, ">")
			if err == nil {
				_ = w.Stop()
			}
			return err
		},
	}
	for name, op := range ops {
		opCtx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
		ctx = opCtx
		start := time.Now()
		err := op()
		cancel()
		elapsed := time.Since(start)
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("%s on a deleted bucket = %v, want jetstream.ErrBucketNotFound", name, err)
		}
		if errors.Is(err, natsclient.ErrKVUnknownOutcome) {
			t.Errorf("%s: no responders taken for an unknown outcome: %v", name, err)
		}
		t.Logf("%s: %v after %v", name, err, elapsed.Round(time.Millisecond))
		// Generous for a loaded machine, and far below the Timeout of a
		// minute that a retry loop would run into.
		if elapsed > 10*time.Second {
			t.Errorf("%s took %v to report a missing bucket", name, elapsed)
		}
	}
	if st := tc.Client.Stats(); st.BreakerTrips != 0 || st.Breaker != natsclient.BreakerClosed {
		t.Fatalf("a missing bucket touched the breaker: %+v", st)
	}
}

// Two versions of a service share a key: each keeps the fields it does not
// know.
func TestUpdateJSONAsKeepsFieldsTheTypeDoesNotDeclare(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "versions"})
	type v1 struct {
		Name string `json:"name"`
	}
	type v2 struct {
		Name  string   `json:"name"`
		Limit int      `json:"limit"`
		Tags  []string `json:"tags,omitempty"`
		Note  string   `json:"note,omitempty"`
	}
	if _, err := natsclient.UpdateJSONAs(ctx, kv, "svc", func(v *v2) error {
		*v = v2{Name: "a", Limit: 42, Tags: []string{"x"}, Note: "n"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The older version changes its one field; the others survive.
	if _, err := natsclient.UpdateJSONAs(ctx, kv, "svc", func(v *v1) error { v.Name = "b"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, got := revisionOf(t, bucket, "svc"); string(got) != `{"name":"b","limit":42,"note":"n","tags":["x"]}` {
		t.Fatalf("after the older version's update: %s", got)
	}
	// The newer version clears a field under omitempty: it goes, as encoding
	// a v2 drops it, and is not brought back from the stored value.
	if _, err := natsclient.UpdateJSONAs(ctx, kv, "svc", func(v *v2) error {
		if v.Name != "b" || v.Limit != 42 {
			t.Errorf("newer version read %+v", *v)
		}
		v.Note, v.Limit = "", 43
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, got := revisionOf(t, bucket, "svc"); string(got) != `{"name":"b","limit":43,"tags":["x"]}` {
		t.Fatalf("after the newer version's update: %s", got)
	}
	// Members in another letter case are the fields they decode into, not
	// strangers: they are not kept twice.
	if _, err := kv.Put(ctx, "svc", []byte(`{"Name":"c","Other":{"k":[1,2]}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := natsclient.UpdateJSONAs(ctx, kv, "svc", func(v *v1) error { v.Name += "!"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, got := revisionOf(t, bucket, "svc"); string(got) != `{"name":"c!","Other":{"k":[1,2]}}` {
		t.Fatalf("after an update of differently cased members: %s", got)
	}
}

func TestKVWatchInvalidPatternsAndStopAfterItsContext(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "patterns"})
	for _, pattern := range []string{"", "a.>.b", "foo.", "foo..bar", ".foo", "a b"} {
		_, err := kv.Watch(ctx, pattern)
		if !errors.Is(err, jetstream.ErrInvalidKey) || !errors.Is(err, nats.ErrBadSubject) || !errors.Is(err, natsclient.ErrInvalidArgument) {
			t.Errorf("Watch(%q) = %v, want jetstream.ErrInvalidKey, nats.ErrBadSubject and ErrInvalidArgument", pattern, err)
		}
	}
	// Stop after the watch's ctx ended: nil, where jetstream's watcher says
	// nats.ErrBadSubscription (a documented difference).
	wctx, cancel := context.WithCancel(ctx)
	w, err := kv.Watch(wctx, ">")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range w.Updates() { // closed once the watcher has stopped
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("Stop after ctx ended = %v, want nil", err)
	}
	if st := tc.Client.Stats(); st.BreakerTrips != 0 || st.ConsecutiveFailures != 0 {
		t.Fatalf("bad patterns touched the breaker: %+v", st)
	}
}
