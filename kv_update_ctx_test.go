package natsclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// lastSeq is the sequence of the newest message in the bucket's stream, read
// with plain jetstream: no message at all was stored when it did not move.
func lastSeq(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	st, err := js.Stream(natstest.Context(t, waitTimeout), "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(natstest.Context(t, waitTimeout))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestKVUpdateWhoseContextEndsInTheFunctionStoresNothing: an update whose ctx
// ends while its update function runs sent nothing, so its error is ctx's
// (context.Canceled, context.DeadlineExceeded), not ErrKVUnknownOutcome, and
// the bucket holds no new message.
func TestKVUpdateWhoseContextEndsInTheFunctionStoresNothing(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "ctxends", History: 5})
	js := natstest.JetStream(t, tc.Server.DirectURL())
	if _, err := bucket.Put(natstest.Context(t, waitTimeout), "k", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	// Each ends its ctx from inside the update function: by cancelling it,
	// or by waiting for its deadline to pass.
	cases := map[string]func(ctx context.Context, cancel context.CancelFunc) error{
		"UpdateJSON cancelled": func(ctx context.Context, cancel context.CancelFunc) error {
			return kv.UpdateJSON(ctx, "k", func(m map[string]any) error { m["n"] = 2; cancel(); return nil })
		},
		"UpdateJSON deadline": func(ctx context.Context, _ context.CancelFunc) error {
			return kv.UpdateJSON(ctx, "k", func(m map[string]any) error { m["n"] = 2; <-ctx.Done(); return nil })
		},
		"UpdateWithRetry cancelled": func(ctx context.Context, cancel context.CancelFunc) error {
			_, err := kv.UpdateWithRetry(ctx, "k", func([]byte) ([]byte, error) { cancel(); return []byte(`{"n":2}`), nil })
			return err
		},
		"UpdateWithRetry deadline": func(ctx context.Context, _ context.CancelFunc) error {
			_, err := kv.UpdateWithRetry(ctx, "k", func([]byte) ([]byte, error) { <-ctx.Done(); return []byte(`{"n":2}`), nil })
			return err
		},
		"UpdateJSONAs cancelled": func(ctx context.Context, cancel context.CancelFunc) error {
			_, err := natsclient.UpdateJSONAs(ctx, kv, "k", func(v *struct{ N int }) error { v.N = 2; cancel(); return nil })
			return err
		},
		"Create through UpdateJSON on a missing key": func(ctx context.Context, cancel context.CancelFunc) error {
			return kv.UpdateJSON(ctx, "missing", func(m map[string]any) error { m["n"] = 2; cancel(); return nil })
		},
	}
	for name, update := range cases {
		t.Run(name, func(t *testing.T) {
			before := lastSeq(t, js, "ctxends")
			// The deadline leaves the read before the function ample time
			// on a loaded machine; the function itself waits it out.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := update(ctx, cancel)
			if errors.Is(err, natsclient.ErrKVUnknownOutcome) {
				t.Fatalf("err = %v: an unknown outcome, though nothing was sent", err)
			}
			if !errors.Is(err, ctx.Err()) || ctx.Err() == nil {
				t.Fatalf("err = %v, want ctx's error %v", err, ctx.Err())
			}
			if after := lastSeq(t, js, "ctxends"); after != before {
				t.Fatalf("the bucket's last sequence moved from %d to %d: something was stored", before, after)
			}
			if rev, v := revisionOf(t, bucket, "k"); rev != 1 || string(v) != `{"n":1}` {
				t.Fatalf("k is %q at revision %d, want {\"n\":1} at 1", v, rev)
			}
		})
	}
}

// TestKVUpdateWhoseContextEndsOnTheWireIsAnUnknownOutcome is the other half:
// a write the server received, whose acknowledgement is held until ctx
// ends, may have been stored, and says so with ErrKVUnknownOutcome. It was
// stored: the server acted on it.
func TestKVUpdateWhoseContextEndsOnTheWireIsAnUnknownOutcome(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(), natstest.WithClientOptions(natsclient.WithTimeout(time.Second)))
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "onthewire", History: 5})
	direct, err := natstest.JetStream(t, tc.Server.DirectURL()).KeyValue(natstest.Context(t, waitTimeout), "onthewire")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Put(natstest.Context(t, waitTimeout), "k", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	freezeNow, frozen := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	go func() {
		result <- kv.UpdateJSON(ctx, "k", func(m map[string]any) error {
			// The harness's faults are driven from the test goroutine.
			freezeNow <- struct{}{}
			<-frozen
			m["n"] = 2
			return nil
		})
	}()
	natstest.Receive(t, freezeNow, waitTimeout, "the update function's call")
	tc.Server.FreezeReplies()
	close(frozen)
	err = natstest.Receive(t, result, waitTimeout, "UpdateJSON's result")
	tc.Server.Thaw()
	if !errors.Is(err, natsclient.ErrKVUnknownOutcome) {
		t.Fatalf("err = %v, want ErrKVUnknownOutcome for a write the server received", err)
	}
	e, err := direct.Get(natstest.Context(t, waitTimeout), "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != `{"n":2}` || e.Revision() != 2 {
		t.Fatalf("k is %q at revision %d, want the write stored once: {\"n\":2} at 2", e.Value(), e.Revision())
	}
}
