package natsclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads of a bucket, asked again while they get no answer.
//
// A read changes nothing, so one that failed without an answer (a timeout,
// no responders, a lost connection, the client dialling a new one) is safe
// to send again: retryRead does, after a wait (backoff), until it is
// answered, fails for good, or the call's budget ends. Get and Keys read
// through it, and so do the reads a write depends on: the update loop's
// load of the key, and the read-back after a lost acknowledgement
// (kv_write.go).

// attemptBound is how long one attempt of a retried read may wait.
type attemptBound int

const (
	// wholeBudget lets an attempt use what is left of the call's budget: a
	// plain read (Get, Keys) is all its call does, so nothing needs the
	// time after it, and the attempt needs no context of its own.
	wholeBudget attemptBound = iota
	// shareOfBudget bounds an attempt as Client.attemptCtx does (the
	// client's timeout, and at most half of what remains), so that a read
	// a write depends on leaves time for another attempt, and for the
	// write.
	shareOfBudget
)

// retryRead runs read on the bucket bound to the current connection until
// it succeeds, fails for good, or ctx ends. Only failures without an answer
// (see transient) are tried again, after a wait; a request nobody received
// ends the call when the bucket is gone (see bucketGone).
func (kv *KVStore) retryRead(ctx context.Context, bound attemptBound, read func(ctx context.Context, b *kvBinding) error) error {
	for attempt := 1; ; attempt++ {
		s, b, err := kv.bucket.bind(ctx)
		if err == nil {
			if bound == shareOfBudget {
				actx, cancel := kv.c.attemptCtx(ctx)
				err = read(actx, b)
				cancel()
			} else {
				err = read(ctx, b)
			}
			if err != nil {
				kv.c.report(s, err)
				if gone := kv.bucketGone(ctx, b, err); gone != nil {
					return gone
				}
			}
		}
		if err == nil || !classify.Transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (after %d attempts: %w)", context.Cause(ctx), attempt, err)
		}
		if werr := backoff.Sleep(ctx, backoff.Delay(kv.opts.RetryDelay, attempt)); werr != nil {
			return fmt.Errorf("%w (after %d attempts: %w)", werr, attempt, err)
		}
	}
}

// bucketGone is asked when a request on the bucket failed: if nobody
// received it (no responders), either the bucket is gone, which is final, or
// its stream has no leader at the moment (an election), which is worth
// waiting for. It asks the server which, and returns the error to end the
// call with, or nil to go on.
func (kv *KVStore) bucketGone(ctx context.Context, b *kvBinding, err error) error {
	if !classify.NoResponders(err) || ctx.Err() != nil {
		return nil
	}
	actx, cancel := kv.c.attemptCtx(ctx)
	defer cancel()
	_, serr := b.js.Stream(actx, kvStreamName(kv.bucket.name))
	if errors.Is(serr, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w (%w)", jetstream.ErrBucketNotFound, err)
	}
	return b.origin.homeUnreachable(err, serr) // a domain nobody answers for (kv_origin.go)
}

// entryState is a key's latest state as an update loop sees it.
type entryState struct {
	value  []byte // nil when the key does not exist
	rev    uint64 // the latest message's revision (a delete marker's too); 0: none
	exists bool
}

// load reads key's latest message, a delete marker included, so that a
// create over a deleted key can expect the marker's revision.
func (kv *KVStore) load(ctx context.Context, op, key string) (entryState, error) {
	var m *jetstream.RawStreamMsg
	err := kv.retryRead(ctx, shareOfBudget, func(ctx context.Context, b *kvBinding) (err error) {
		m, err = b.origin.lastMsg(ctx, key) // the revision a write will expect: the origin's
		return err
	})
	switch {
	case err != nil:
		return entryState{}, kv.classify(op, key, false, err)
	case m == nil:
		return entryState{}, nil
	case isDeleteMarker(m.Header):
		return entryState{rev: m.Sequence}, nil
	}
	value := m.Data
	if value == nil {
		value = []byte{}
	}
	return entryState{value: value, rev: m.Sequence, exists: true}, nil
}

// Headers of the messages behind a bucket's entries, as jetstream writes them.
const (
	kvOperationHeader = "KV-Operation" // "DEL" or "PURGE" on a delete marker
	kvDelete          = "DEL"
	kvPurge           = "PURGE"
)

// isDeleteMarker reports whether a bucket message marks its key deleted: a
// Delete or Purge, or a server marker (TTL expiry, removal).
func isDeleteMarker(h nats.Header) bool {
	if len(h) == 0 {
		return false
	}
	switch h.Get(kvOperationHeader) {
	case kvDelete, kvPurge:
		return true
	}
	return h.Get(jetstream.MarkerReasonHeader) != ""
}
