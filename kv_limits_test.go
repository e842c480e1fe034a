package natsclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// The server counts headers toward a bucket's MaxValueSize. Whatever
// jetstream's KeyValue stores, a KVStore on the same bucket must store too.
func TestKVStoresEveryValueJetStreamStores(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	js := natstest.JetStream(t, tc.Server.DirectURL())
	for _, limit := range []int32{16, 128} {
		raw, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fmt.Sprintf("size%d", limit), MaxValueSize: limit})
		if err != nil {
			t.Fatal(err)
		}
		kv := tc.Client.NewKVStore(raw)
		type write func(key string, value []byte) error
		// update puts an empty value, then updates it at that revision.
		update := func(put func(context.Context, string, []byte) (uint64, error),
			upd func(context.Context, string, []byte, uint64) (uint64, error)) write {
			return func(key string, value []byte) error {
				rev, err := put(ctx, key, nil)
				if err != nil {
					return fmt.Errorf("put before update: %w", err)
				}
				_, err = upd(ctx, key, value, rev)
				return err
			}
		}
		ops := []struct {
			name   string
			theirs write
			ours   write
		}{
			{name: "Put",
				theirs: func(k string, v []byte) error { _, err := raw.Put(ctx, k, v); return err },
				ours:   func(k string, v []byte) error { _, err := kv.Put(ctx, k, v); return err }},
			{name: "Create",
				theirs: func(k string, v []byte) error { _, err := raw.Create(ctx, k, v); return err },
				ours:   func(k string, v []byte) error { _, err := kv.Create(ctx, k, v); return err }},
			{name: "Update",
				theirs: update(raw.Put, raw.Update),
				ours:   update(kv.Put, kv.Update)},
		}
		for _, op := range ops {
			// The largest value jetstream stores with this operation.
			largest := -1
			for n := int(limit); n >= 0 && largest < 0; n-- {
				if err := op.theirs(fmt.Sprintf("theirs-%s-%d", op.name, n), bytes.Repeat([]byte("v"), n)); err == nil {
					largest = n
				}
			}
			if largest < 0 {
				t.Logf("MaxValueSize %d: jetstream's %s stores no value at all", limit, op.name)
				continue
			}
			t.Logf("MaxValueSize %d: jetstream's %s stores up to %d bytes", limit, op.name, largest)
			key := fmt.Sprintf("ours-%s", op.name)
			value := bytes.Repeat([]byte("o"), largest)
			if err := op.ours(key, value); err != nil {
				t.Fatalf("MaxValueSize %d: KVStore.%s of %d bytes, which jetstream stores: %v", limit, op.name, largest, err)
			}
			if e, err := raw.Get(ctx, key); err != nil || !bytes.Equal(e.Value(), value) {
				t.Fatalf("MaxValueSize %d: %s stored %q, %v", limit, op.name, e.Value(), err)
			}
			err := op.ours(key+"-over", append(value, 'o'))
			if !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) || !errors.Is(err, natsclient.ErrInvalidArgument) {
				t.Fatalf("MaxValueSize %d: %s of %d bytes = %v, want ErrInvalidArgument and jetstream.ErrStreamMessageExceedsMaximum",
					limit, op.name, largest+1, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "plus") || !strings.Contains(msg, fmt.Sprintf("MaxValueSize of %d bytes", limit)) {
				t.Fatalf("refusal does not say that value plus headers exceed the limit: %v", err)
			}
		}
	}
	if st := tc.Client.Stats(); st.BreakerTrips != 0 || st.ConsecutiveFailures != 0 {
		t.Fatalf("refusals touched the breaker: %+v", st)
	}
}

// Where there is room, a compare-and-swap write carries its identity, and
// the identity is short.
func TestKVCompareAndSwapWritesCarryAShortIdentity(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "ident"})
	rev, err := kv.Create(ctx, "k", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, "k", []byte("2"), rev); err != nil {
		t.Fatal(err)
	}
	st, err := natstest.JetStream(t, tc.Server.DirectURL()).Stream(ctx, "KV_ident")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "$KV.ident.k")
	if err != nil {
		t.Fatal(err)
	}
	id := m.Header.Get(jetstream.MsgIDHeader)
	if id == "" || len(id) > 18 {
		t.Fatalf("Nats-Msg-Id %q: want one of at most 18 characters", id)
	}
}

// The limit is the server's: a store made before the bucket's MaxValueSize
// changed follows the change.
func TestKVValueLimitIsTheServersNotACachedCopy(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	cfg := jetstream.KeyValueConfig{Bucket: "resized", MaxValueSize: 32}
	_, kv := newBucket(t, tc, cfg)
	big := bytes.Repeat([]byte("b"), 100)
	if _, err := kv.Put(ctx, "k", big); !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) ||
		!strings.Contains(err.Error(), "MaxValueSize of 32 bytes") {
		t.Fatalf("Put(100 bytes) into MaxValueSize 32 = %v", err)
	}
	js, err := tc.Client.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxValueSize = 1024
	if _, err := js.UpdateKeyValue(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", big); err != nil {
		t.Fatalf("Put(100 bytes) after MaxValueSize was raised to 1024: %v", err)
	}
	cfg.MaxValueSize = 16
	if _, err := js.UpdateKeyValue(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", big); !strings.Contains(fmt.Sprint(err), "MaxValueSize of 16 bytes") {
		t.Fatalf("Put(100 bytes) after MaxValueSize was lowered to 16 = %v", err)
	}
}
