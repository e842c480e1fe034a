package natsclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// ValidateKey reports whether key can name a Key-Value entry: not empty, made
// of letters, digits and - / _ = . only, without a leading or trailing dot or
// an empty token (".."), and short enough for the requests on it to fit the
// server's control line of 4096 bytes in a bucket with a one-character name
// (a KVStore checks against its own bucket's name). The error matches
// ErrInvalidArgument and jetstream.ErrInvalidKey, and says what is wrong.
func ValidateKey(key string) error { return wire.ValidateKey("", key) }

// ValidateBucketName reports whether name can name a Key-Value bucket: not
// empty, made of letters, digits, - and _ only. The error matches
// ErrInvalidArgument and jetstream.ErrInvalidBucketName.
func ValidateBucketName(name string) error { return wire.ValidateBucketName(name) }

// kvBinding is a bucket bound to one connection: jetstream's KeyValue for
// reads, watches and deletes, the stream behind it for raw reads with
// headers, and the JetStream context the store publishes its writes with.
type kvBinding struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
	origin *kvOrigin // where writes go and are decided (kv_origin.go)
}

// bucketHandle is the jetstream.KeyValue the client hands out: it keeps the
// bucket's name and rebinds to the current connection when the client
// dialled a new one. Its methods return jetstream's errors as they are, and
// report transport failures to the breaker; a key too long for the server's
// control line is refused before anything is sent, as a KVStore refuses it.
type bucketHandle struct {
	name string
	rebinder[*kvBinding]
}

var _ jetstream.KeyValue = (*bucketHandle)(nil)

func (c *Client) newBucketHandle(name string) *bucketHandle {
	h := &bucketHandle{name: name}
	h.c = c
	h.open = func(ctx context.Context, js jetstream.JetStream) (*kvBinding, error) {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			where := inDomain(js, err)
			if dom := js.Options().Domain; where == "" && dom != "" {
				where = fmt.Sprintf(" in JetStream domain %q", dom)
			}
			return nil, fmt.Errorf("natsclient: key-value bucket %q%s: %w", name, where, err)
		}
		st, err := js.Stream(ctx, kvStreamName(name))
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				err = fmt.Errorf("%w: %w", jetstream.ErrBucketNotFound, err)
			}
			return nil, fmt.Errorf("natsclient: key-value bucket %q: %w", name, err)
		}
		origin, err := findOrigin(js, name, st)
		if err != nil {
			return nil, fmt.Errorf("natsclient: key-value bucket %q: %w", name, err)
		}
		return &kvBinding{js: js, kv: kv, stream: st, origin: origin}, nil
	}
	return h
}

// CreateKeyValueBucket creates the bucket cfg describes and returns it. An
// existing bucket with the same configuration is returned as it is; one with
// another configuration is an error matching jetstream.ErrBucketExists that
// says so (change it with JetStream().UpdateKeyValue). An invalid bucket
// name matches ErrInvalidArgument and jetstream.ErrInvalidBucketName. The
// returned bucket follows the client to each new connection.
func (c *Client) CreateKeyValueBucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if err := ValidateBucketName(cfg.Bucket); err != nil {
		return nil, err
	}
	_, _, err := jsOnce(c, ctx, fmt.Sprintf("create key-value bucket %q", cfg.Bucket), func(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
		kv, err := js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			err = fmt.Errorf("it exists with a different configuration: %w", err)
		}
		return kv, err
	})
	if err != nil {
		return nil, err
	}
	h := c.newBucketHandle(cfg.Bucket)
	if _, _, err := h.bind(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// KeyValueBucket returns the existing bucket name. A missing bucket matches
// jetstream.ErrBucketNotFound. The bucket follows the client to each new
// connection.
func (c *Client) KeyValueBucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	if err := ValidateBucketName(name); err != nil {
		return nil, err
	}
	h := c.newBucketHandle(name)
	if _, _, err := h.bind(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// DeleteKeyValueBucket deletes the bucket name and everything in it. A
// missing bucket matches jetstream.ErrBucketNotFound.
func (c *Client) DeleteKeyValueBucket(ctx context.Context, name string) error {
	if err := ValidateBucketName(name); err != nil {
		return err
	}
	_, _, err := jsOnce(c, ctx, fmt.Sprintf("delete key-value bucket %q", name), func(ctx context.Context, js jetstream.JetStream) (struct{}, error) {
		return struct{}{}, js.DeleteKeyValue(ctx, name)
	})
	return err
}

// kvCall runs fn on jetstream's KeyValue bound to the current connection.
func kvCall[T any](h *bucketHandle, ctx context.Context, fn func(jetstream.KeyValue) (T, error)) (T, error) {
	return callBound(&h.rebinder, ctx, func(b *kvBinding) (T, error) { return fn(b.kv) })
}

// keyCall is kvCall for a call on one key. A key too long for the server's
// control line is refused before anything is sent: jetstream would send it,
// and the server close the connection.
func keyCall[T any](h *bucketHandle, ctx context.Context, key string, fn func(jetstream.KeyValue) (T, error)) (T, error) {
	if err := wire.TooLong(h.name, "key", key); err != nil {
		var zero T
		return zero, fmt.Errorf("natsclient: key-value bucket %q: %w", h.name, err)
	}
	return kvCall(h, ctx, fn)
}

func (h *bucketHandle) kvErr(ctx context.Context, fn func(jetstream.KeyValue) error) error {
	_, err := kvCall(h, ctx, func(kv jetstream.KeyValue) (struct{}, error) { return struct{}{}, fn(kv) })
	return err
}

func (h *bucketHandle) keyErr(ctx context.Context, key string, fn func(jetstream.KeyValue) error) error {
	_, err := keyCall(h, ctx, key, func(kv jetstream.KeyValue) (struct{}, error) { return struct{}{}, fn(kv) })
	return err
}

func (h *bucketHandle) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) })
}

func (h *bucketHandle) GetRevision(ctx context.Context, key string, revision uint64) (jetstream.KeyValueEntry, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) (jetstream.KeyValueEntry, error) {
		return kv.GetRevision(ctx, key, revision)
	})
}

func (h *bucketHandle) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) (uint64, error) { return kv.Put(ctx, key, value) })
}

func (h *bucketHandle) PutString(ctx context.Context, key string, value string) (uint64, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) (uint64, error) { return kv.PutString(ctx, key, value) })
}

func (h *bucketHandle) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) (uint64, error) { return kv.Create(ctx, key, value, opts...) })
}

func (h *bucketHandle) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) (uint64, error) { return kv.Update(ctx, key, value, revision) })
}

func (h *bucketHandle) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return h.keyErr(ctx, key, func(kv jetstream.KeyValue) error { return kv.Delete(ctx, key, opts...) })
}

func (h *bucketHandle) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return h.keyErr(ctx, key, func(kv jetstream.KeyValue) error { return kv.Purge(ctx, key, opts...) })
}

// Watch, WatchAll and WatchFiltered return the client's own watcher (see
// kvWatcher), as KVStore.Watch does: it follows the client to each new
// connection, and a Close called by the goroutine that reads its updates
// returns. Its Stop returns nil, also after ctx ended.
func (h *bucketHandle) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if err := wire.TooLong(h.name, "key", keys); err != nil {
		return nil, fmt.Errorf("natsclient: key-value bucket %q: %w", h.name, err)
	}
	return h.watch(ctx, []string{keys}, opts)
}

func (h *bucketHandle) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return h.watch(ctx, []string{jetstream.AllKeys}, opts)
}

func (h *bucketHandle) WatchFiltered(ctx context.Context, keys []string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	for _, key := range keys {
		if err := wire.TooLong(h.name, "key", key); err != nil {
			return nil, fmt.Errorf("natsclient: key-value bucket %q: %w", h.name, err)
		}
	}
	return h.watch(ctx, keys, opts)
}

// watch returns a watcher of keys, or nil (not a nil *kvWatcher in the
// interface) with the error.
func (h *bucketHandle) watch(ctx context.Context, keys []string, opts []jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := newKVWatcher(ctx, h, keys, opts)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (h *bucketHandle) Keys(ctx context.Context, opts ...jetstream.WatchOpt) ([]string, error) {
	return kvCall(h, ctx, func(kv jetstream.KeyValue) ([]string, error) { return kv.Keys(ctx, opts...) })
}

func (h *bucketHandle) ListKeys(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyLister, error) {
	return kvCall(h, ctx, func(kv jetstream.KeyValue) (jetstream.KeyLister, error) { return kv.ListKeys(ctx, opts...) })
}

func (h *bucketHandle) ListKeysFiltered(ctx context.Context, filters ...string) (jetstream.KeyLister, error) {
	return kvCall(h, ctx, func(kv jetstream.KeyValue) (jetstream.KeyLister, error) {
		return kv.ListKeysFiltered(ctx, filters...)
	})
}

func (h *bucketHandle) History(ctx context.Context, key string, opts ...jetstream.WatchOpt) ([]jetstream.KeyValueEntry, error) {
	return keyCall(h, ctx, key, func(kv jetstream.KeyValue) ([]jetstream.KeyValueEntry, error) {
		return kv.History(ctx, key, opts...)
	})
}

// Bucket returns the bucket's name.
func (h *bucketHandle) Bucket() string { return h.name }

func (h *bucketHandle) PurgeDeletes(ctx context.Context, opts ...jetstream.KVPurgeOpt) error {
	return h.kvErr(ctx, func(kv jetstream.KeyValue) error { return kv.PurgeDeletes(ctx, opts...) })
}

func (h *bucketHandle) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	return kvCall(h, ctx, func(kv jetstream.KeyValue) (jetstream.KeyValueStatus, error) { return kv.Status(ctx) })
}
