package natsclient_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// longKey is a valid key of n bytes.
func longKey(n int) string { return strings.Repeat("k", n) }

// The server closes a connection whose protocol line exceeds its control-line
// limit (4096 bytes); a key whose requests would not fit is refused before
// anything is sent, and the longest key allowed works in every operation.
func TestKVKeysLongerThanTheServerAcceptsAreRefusedAtOnce(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	const bucketName = "a-bucket-with-a-long-name"
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: bucketName, History: 5})
	connections := tc.Client.Stats().Connections

	// Find the longest key the store takes: the limit the error names.
	_, err := kv.Put(ctx, longKey(5000), []byte("x"))
	if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey) ||
		!strings.Contains(err.Error(), "control-line limit of 4096 bytes") {
		t.Fatalf("Put(5000-byte key) = %v, want ErrInvalidArgument naming the 4096-byte limit", err)
	}
	max := 0
	for n := 4096; n > 0 && max == 0; n-- {
		if err := natsclient.ValidateKey(longKey(n)); err == nil {
			max = n // ValidateKey alone: the limit for the shortest bucket name
		}
	}
	max -= 2 * (len(bucketName) - 1) // this bucket's name is longer, and in each request twice
	t.Logf("longest key in bucket %q: %d bytes", bucketName, max)

	key := longKey(max)
	rev, err := kv.Put(ctx, key, []byte("1"))
	if err != nil {
		t.Fatalf("Put(longest key) = %v", err)
	}
	if e, err := kv.Get(ctx, key); err != nil || string(e.Value()) != "1" {
		t.Fatalf("Get(longest key) = %v, %v", e, err)
	}
	if rev, err = kv.Update(ctx, key, []byte("2"), rev); err != nil {
		t.Fatalf("Update(longest key) = %v", err)
	}
	w, err := kv.Watch(ctx, key)
	if err != nil {
		t.Fatalf("Watch(longest key) = %v", err)
	}
	if e := natstest.Receive(t, w.Updates(), waitTimeout, "the longest key's value"); e == nil || e.Revision() != rev {
		t.Fatalf("Watch(longest key) delivered %v", e)
	}
	_ = w.Stop()
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatalf("Delete(longest key) = %v", err)
	}

	for name, op := range map[string]func(string) error{
		"Put":    func(k string) error { _, err := kv.Put(ctx, k, []byte("x")); return err },
		"Get":    func(k string) error { _, err := kv.Get(ctx, k); return err },
		"Create": func(k string) error { _, err := kv.Create(ctx, k, []byte("x")); return err },
		"Watch":  func(k string) error { _, err := kv.Watch(ctx, k); return err },
		"UpdateJSON": func(k string) error {
			return kv.UpdateJSON(ctx, k, func(map[string]any) error { return nil })
		},
	} {
		if err := op(longKey(max + 1)); !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Fatalf("%s(key of %d bytes) = %v, want ErrInvalidArgument", name, max+1, err)
		}
	}
	// The client's bucket handle, a jetstream.KeyValue, refuses them too.
	if _, err := bucket.Put(ctx, longKey(max+1), []byte("x")); !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey) {
		t.Fatalf("bucket handle Put(key of %d bytes) = %v, want ErrInvalidArgument", max+1, err)
	}
	if _, err := bucket.Put(ctx, key, []byte("3")); err != nil {
		t.Fatalf("bucket handle Put(longest key) = %v", err)
	}
	if st := tc.Client.Stats(); st.Connections != connections || st.BreakerTrips != 0 || st.ConsecutiveFailures != 0 {
		t.Fatalf("long keys cost connections or touched the breaker: %+v (connections before: %d)", st, connections)
	}
}
