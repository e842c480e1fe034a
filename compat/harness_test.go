package compat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// withJSServer gives fn a natstest server, a plain nats.go connection to it,
// and a jetstream.JetStream whose Key-Value buckets are natsclient KVStores
// (see storeKV), in place of nats.go's harness of the same name.
func withJSServer(t *testing.T, fn func(*testing.T, *nats.Conn, jetstream.JetStream)) {
	t.Helper()
	tc := natstest.NewTestClient(t, natstest.WithKV())
	nc, err := nats.Connect(tc.Server.DirectURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := tc.Client.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	fn(t, nc, clientJS{JetStream: js, c: tc.Client})
}

// clientJS is the client's JetStream context, with its Key-Value buckets
// made and found through the client and wrapped as KVStores.
type clientJS struct {
	jetstream.JetStream
	c *natsclient.Client
}

func (j clientJS) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	b, err := j.c.CreateKeyValueBucket(ctx, cfg)
	// nats.go's tests delete a bucket and create one of the same name at
	// once; on a loaded machine the server can still be removing the old
	// stream's files and answer "error creating store for stream" (10049,
	// seen in CI). The server's race, not the client's: try again briefly.
	for deadline := time.Now().Add(2 * time.Second); storeNotCreated(err) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		b, err = j.c.CreateKeyValueBucket(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return newStoreKV(j.c, b)
}

// storeNotCreated reports the server's "error creating store for stream"
// (nats-server's JSStreamStoreFailedF, 10049).
func storeNotCreated(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10049
}

func (j clientJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if _, err := j.JetStream.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
		return nil, err
	}
	return j.KeyValue(ctx, cfg.Bucket)
}

func (j clientJS) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	b, err := j.c.KeyValueBucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return newStoreKV(j.c, b)
}

func (j clientJS) DeleteKeyValue(ctx context.Context, bucket string) error {
	return j.c.DeleteKeyValueBucket(ctx, bucket)
}

// storeKV is a jetstream.KeyValue whose operations go to a natsclient
// KVStore where it offers them, and to the client's bucket handle
// otherwise (History, Purge, Status, ListKeys, ...).
type storeKV struct {
	jetstream.KeyValue
	s *natsclient.KVStore
}

func newStoreKV(c *natsclient.Client, b jetstream.KeyValue) (jetstream.KeyValue, error) {
	s := c.NewKVStore(b)
	return storeKV{KeyValue: b, s: s}, s.Err()
}

func (k storeKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return k.s.Get(ctx, key)
}

func (k storeKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return k.s.Put(ctx, key, value)
}

func (k storeKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	return k.s.Put(ctx, key, []byte(value))
}

// Create goes to the KVStore unless it is given options (a TTL), which
// KVStore.Create does not take.
func (k storeKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if len(opts) > 0 {
		return k.KeyValue.Create(ctx, key, value, opts...)
	}
	return k.s.Create(ctx, key, value)
}

func (k storeKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return k.s.Update(ctx, key, value, revision)
}

func (k storeKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return k.s.Delete(ctx, key, opts...)
}

// Keys goes to the KVStore unless it is given options, which KVStore.Keys
// does not take.
func (k storeKV) Keys(ctx context.Context, opts ...jetstream.WatchOpt) ([]string, error) {
	if len(opts) > 0 {
		return k.KeyValue.Keys(ctx, opts...)
	}
	return k.s.Keys(ctx)
}

func (k storeKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return k.s.Watch(ctx, keys, opts...)
}

func (k storeKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return k.s.Watch(ctx, ">", opts...)
}

// The helpers of nats.go's test package that the ported tests use.

func expectOk(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Unexpected error: %v", err)
	}
}

func expectErr(t *testing.T, err error, expected ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("Expected error but got none")
	}
	if len(expected) == 0 {
		return
	}
	for _, e := range expected {
		if errors.Is(err, e) {
			return
		}
	}
	t.Fatalf("Expected one of %+v, got '%v'", expected, err)
}
