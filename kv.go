package natsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/c360/natsclient/internal/errs"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of KVOptions.
const (
	DefaultKVMaxRetries = 3
	DefaultKVRetryDelay = 10 * time.Millisecond
	DefaultKVTimeout    = 5 * time.Second
)

// KVOptions configure a KVStore. NewKVStore starts from the defaults (3
// retries, 10ms, 5s) and applies the functions given to it; a negative value
// is an error (see KVStore.Err), never replaced by a default.
type KVOptions struct {
	// MaxRetries is how many times an update loop (UpdateJSON,
	// UpdateJSONAs, UpdateWithRetry) tries again after losing a
	// compare-and-swap to a concurrent writer: at most MaxRetries+1
	// attempts in all. 0 means a single attempt.
	MaxRetries int
	// RetryDelay is the first wait before a retry. Each further retry waits
	// twice as long (capped at 64×RetryDelay), spread by jitter to between
	// half and all of it, so that writers who collided do not collide again
	// in lockstep. 0 retries at once.
	RetryDelay time.Duration
	// Timeout bounds each KVStore call as a whole, retries included,
	// together with the caller's ctx: whichever ends first ends the call.
	// 0 leaves only ctx. Within a call, each request to the server waits at
	// most the client's timeout (WithTimeout) and at most half of what
	// remains, so that after a lost acknowledgement there is always time
	// left to find out whether the write was stored.
	Timeout time.Duration
}

func defaultKVOptions() KVOptions {
	return KVOptions{MaxRetries: DefaultKVMaxRetries, RetryDelay: DefaultKVRetryDelay, Timeout: DefaultKVTimeout}
}

func (o KVOptions) validate() error {
	switch {
	case o.MaxRetries < 0:
		return invalidOption("KVOptions.MaxRetries", "%d is negative", o.MaxRetries)
	case o.RetryDelay < 0:
		return invalidOption("KVOptions.RetryDelay", "%v is negative", o.RetryDelay)
	case o.Timeout < 0:
		return invalidOption("KVOptions.Timeout", "%v is negative", o.Timeout)
	}
	return nil
}

// KVStore is a Key-Value bucket with compare-and-swap updates that retry on
// conflict, JSON helpers and errors that match both natsclient's sentinels
// and jetstream's. It is safe for concurrent use, and keeps working across
// reconnects and new connections of its client: it holds the bucket's name
// and rebinds to the current connection when the client dialled a new one.
//
// # Exactly once
//
// Every write a KVStore makes carries an identity, a random Nats-Msg-Id
// header, and (Create, Update and the update loops) the revision it expects
// the key to be at, in the Nats-Expected-Last-Subject-Sequence header. When
// a write's acknowledgement does not arrive (a timeout, a lost connection)
// the write may or may not have been stored, and calling an update function
// again could apply its change twice. So the store first reads back what the
// bucket holds: if the key's latest message, or the one that followed the
// expected revision, carries the write's ID, the write was stored and its
// revision is returned; if the key is still at the expected revision, the
// same message (same ID, same expected revision) is sent again, which the
// server cannot store twice; if the key moved on through another writer's
// message, the write can never be stored and the loop reads and calls fn
// again. When none of this can be decided (the message that would tell was
// overwritten in a bucket with a short History, or the server did not answer
// before the Timeout), the call returns an error matching
// ErrKVUnknownOutcome and never applies the change a second time.
// ErrKVUnknownOutcome is only for a write that was sent: a call whose ctx
// or Timeout ends before its write is sent (while an update function runs,
// say) stored nothing, and its error matches ctx's error
// (context.Canceled, context.DeadlineExceeded) and not ErrKVUnknownOutcome.
//
// The server counts headers toward the bucket's MaxValueSize. The identity
// is short (13 to 18 characters, a header line of 28 to 33 bytes), and when
// the server refuses a write for its size, the write is sent once more
// without it, as jetstream's KeyValue sends it: a KVStore stores every value
// jetstream stores. Such a write has no exactly-once guarantee, and a lost
// acknowledgement of it is ErrKVUnknownOutcome. A value too large even then is an error matching
// ErrInvalidArgument and jetstream.ErrStreamMessageExceedsMaximum that says
// how many bytes of value and headers it had, and the bucket's limit.
//
// # Errors
//
// A call on a bucket that was deleted fails within about a second with an
// error matching jetstream.ErrBucketNotFound. A key too long for the
// server's control line (see ValidateKey) is refused before anything is
// sent.
type KVStore struct {
	c      *Client
	bucket *bucketHandle
	opts   KVOptions
	err    error
	// timeoutCause is the cause of a call's budget ending by Timeout, made
	// once rather than per call.
	timeoutCause error
}

// NewKVStore returns a KVStore on bucket, configured by opts, which change
// the defaults in place:
//
//	kv := client.NewKVStore(bucket, func(o *natsclient.KVOptions) { o.MaxRetries = 10 })
//
// Since it returns no error, an invalid option (a negative value, a nil
// function) or a nil bucket is kept and returned, matching ErrInvalidOption
// or ErrInvalidArgument, by Err and by every call on the store; nothing is
// replaced silently.
func (c *Client) NewKVStore(bucket jetstream.KeyValue, opts ...func(*KVOptions)) *KVStore {
	kv := &KVStore{c: c, opts: defaultKVOptions()}
	for i, opt := range opts {
		if opt == nil {
			kv.err = invalidOption("NewKVStore", "option %d is nil", i)
			break
		}
		opt(&kv.opts)
	}
	if kv.err == nil {
		kv.err = kv.opts.validate()
	}
	kv.timeoutCause = fmt.Errorf("natsclient: kv: KVOptions.Timeout of %v reached: %w", kv.opts.Timeout, context.DeadlineExceeded)
	switch h := bucket.(type) {
	case nil:
		kv.bucket = c.newBucketHandle("")
		if kv.err == nil {
			kv.err = errs.InvalidArgument("NewKVStore: nil bucket")
		}
	case *bucketHandle:
		if h.c == c {
			kv.bucket = h // share its binding
			break
		}
		kv.bucket = c.newBucketHandle(h.name)
	default:
		// A bucket from another connection: keep its name, bind to ours.
		kv.bucket = c.newBucketHandle(bucket.Bucket())
	}
	if kv.err == nil && kv.bucket.name != "" {
		kv.err = ValidateBucketName(kv.bucket.name)
	}
	return kv
}

// Err returns the error NewKVStore found in its arguments, or nil. A store
// with an error fails every call with it.
func (kv *KVStore) Err() error { return kv.err }

// Options returns the store's options, defaults included.
func (kv *KVStore) Options() KVOptions { return kv.opts }

// Bucket returns the bucket's name.
func (kv *KVStore) Bucket() string { return kv.bucket.name }

// Get returns the key's latest entry. A key that does not exist or was
// deleted is an error matching ErrKVKeyNotFound and jetstream.ErrKeyNotFound.
func (kv *KVStore) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	bg, err := kv.begin(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	defer bg.end()
	var entry jetstream.KeyValueEntry
	err = kv.retryRead(bg.context(), wholeBudget, func(ctx context.Context, b *kvBinding) (err error) {
		entry, err = b.kv.Get(ctx, key)
		return err
	})
	if err != nil {
		return nil, kv.classify("get", key, false, err)
	}
	return entry, nil
}

// GetJSON decodes the key's latest value into v, which must be a pointer, and
// returns its revision. A missing key matches ErrKVKeyNotFound; a value that
// does not decode into v is an error naming the key and the problem.
func (kv *KVStore) GetJSON(ctx context.Context, key string, v any) (uint64, error) {
	entry, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(entry.Value(), v); err != nil {
		return 0, &kvError{op: "get json", bucket: kv.bucket.name, key: key,
			err: fmt.Errorf("decode stored value (revision %d): %w", entry.Revision(), err)}
	}
	return entry.Revision(), nil
}

// Put stores value under key, whatever the key holds, and returns the new
// revision. If the acknowledgement is lost, the same message is sent again:
// its message ID lets the server store it once (within the bucket's
// duplicate window of 2 minutes, or its TTL if shorter).
func (kv *KVStore) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	bg, err := kv.begin(ctx, "put", key)
	if err != nil {
		return 0, err
	}
	defer bg.end()
	return kv.c.tel.kvWrite(ctx, "put", kv.bucket.name, key).end(kv.write(&bg, writeReq{op: "put", key: key, value: value}))
}

// PutJSON stores v encoded as JSON under key and returns the new revision.
// A nil v (or a nil map, pointer or slice) is stored as JSON null, which
// UpdateJSON reads as an empty object. A v that does not encode is an error
// matching ErrInvalidArgument, and nothing is stored.
func (kv *KVStore) PutJSON(ctx context.Context, key string, v any) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, &kvError{op: "put json", bucket: kv.bucket.name, key: key,
			err: fmt.Errorf("%w: encode value: %w", ErrInvalidArgument, err)}
	}
	return kv.Put(ctx, key, data)
}

// Create stores value under key only if the key does not exist (or was
// deleted), and returns the new revision. An existing key is an error
// matching ErrKVRevisionMismatch and jetstream.ErrKeyExists.
func (kv *KVStore) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	bg, err := kv.begin(ctx, "create", key)
	if err != nil {
		return 0, err
	}
	defer bg.end()
	w := kv.c.tel.kvWrite(ctx, "create", kv.bucket.name, key)
	rev, err := kv.write(&bg, writeReq{op: "create", key: key, value: value, cas: true, create: true})
	if err == nil || !IsKVConflictError(err) || errors.Is(err, ErrKVUnknownOutcome) {
		return w.end(rev, err)
	}
	// A deleted key's last message is its delete marker: create over it.
	cur, lerr := kv.load(bg.context(), "create", key)
	if lerr != nil || cur.exists {
		return w.end(0, err)
	}
	return w.end(kv.write(&bg, writeReq{op: "create", key: key, value: value, cas: true, create: true, expected: cur.rev}))
}

// Update stores value under key only if the key's latest revision is
// revision, and returns the new revision. Another revision is an error
// matching ErrKVRevisionMismatch and jetstream.ErrKeyRevisionMismatch.
func (kv *KVStore) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	bg, err := kv.begin(ctx, "update", key)
	if err != nil {
		return 0, err
	}
	defer bg.end()
	return kv.c.tel.kvWrite(ctx, "update", kv.bucket.name, key).end(
		kv.write(&bg, writeReq{op: "update", key: key, value: value, cas: true, expected: revision}))
}

// Delete places a delete marker on key, keeping its history (Get then
// reports it not found, and an update loop starts from an empty value).
// jetstream.LastRevision makes it conditional: a conflict matches
// ErrKVRevisionMismatch. It is sent once: a lost acknowledgement is returned,
// not retried.
func (kv *KVStore) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	bg, err := kv.begin(ctx, "delete", key)
	if err != nil {
		return err
	}
	defer bg.end()
	ctx = bg.context()
	_, err = callBound(&kv.bucket.rebinder, ctx, func(b *kvBinding) (struct{}, error) {
		actx, cancel := kv.c.attemptCtx(ctx)
		err := b.kv.Delete(actx, key, opts...)
		cancel()
		if gone := kv.bucketGone(ctx, b, err); gone != nil {
			err = gone
		}
		return struct{}{}, err
	})
	if err != nil {
		return kv.classify("delete", key, false, err)
	}
	return nil
}

// Keys returns the bucket's keys; an empty bucket gives an empty slice.
func (kv *KVStore) Keys(ctx context.Context) ([]string, error) {
	bg, err := kv.beginBucket(ctx)
	if err != nil {
		return nil, err
	}
	defer bg.end()
	var keys []string
	err = kv.retryRead(bg.context(), wholeBudget, func(ctx context.Context, b *kvBinding) (err error) {
		keys, err = b.kv.Keys(ctx)
		return err
	})
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []string{}, nil
	}
	if err != nil {
		return nil, kv.classify("keys", "", false, err)
	}
	return keys, nil
}

// Watch watches the keys matching pattern ("*" and ">" wildcards allowed),
// first delivering their current values, then a nil entry, then changes,
// until ctx ends or the watcher is stopped; the Updates channel is closed
// then. opts are jetstream's (IncludeHistory, UpdatesOnly, ...).
//
// The watcher follows the client: each time the client is connected again,
// after nats.go reconnected or on a new connection the client dialled, it
// watches again, resuming after the last revision it delivered, so no change
// is lost or repeated and a change made after a server restart arrives at
// once (jetstream's own watcher finds its consumer gone only by missed
// heartbeats, 10 s or more). Through a Domain it also watches again when
// the domain's link returns (see Client.Consume).
//
// An invalid pattern is an error matching ErrInvalidArgument,
// jetstream.ErrInvalidKey and nats.ErrBadSubject. The watcher's Stop is
// idempotent and returns nil, also after ctx ended, where jetstream's
// watcher returns nats.ErrBadSubscription.
func (kv *KVStore) Watch(ctx context.Context, pattern string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if kv.err != nil {
		return nil, kv.err
	}
	if ctx == nil {
		return nil, errNilContext
	}
	if err := ValidateSubscribeSubject(pattern); err != nil {
		return nil, &kvError{op: "watch", bucket: kv.bucket.name, key: shortKey(pattern),
			err: fmt.Errorf("%w: %w", err, jetstream.ErrInvalidKey)}
	}
	if err := wire.TooLong(kv.bucket.name, "pattern", pattern); err != nil {
		return nil, &kvError{op: "watch", bucket: kv.bucket.name, key: shortKey(pattern), err: err}
	}
	w, err := newKVWatcher(ctx, kv.bucket, []string{pattern}, opts)
	if err != nil {
		return nil, kv.classify("watch", pattern, false, err)
	}
	return w, nil
}
