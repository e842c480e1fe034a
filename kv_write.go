package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/classify"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of the messages behind a bucket's entries, as jetstream writes them.
const (
	kvOperationHeader = "KV-Operation" // "DEL" or "PURGE" on a delete marker
	kvDelete          = "DEL"
	kvPurge           = "PURGE"
)

// writeReq is one write to a key.
type writeReq struct {
	op, key string
	value   []byte
	// cas makes the write conditional on the key being at revision expected
	// (0: the key must not exist).
	cas      bool
	create   bool // a Create: a conflict matches jetstream.ErrKeyExists
	expected uint64
}

// outcome is what reading back tells about a write whose answer was lost.
type outcome int

const (
	outcomeUnknown outcome = iota // cannot be decided: ErrKVUnknownOutcome
	outcomeStored                 // the write was stored
	outcomePending                // not stored, and may still be: send it again
	outcomeLost                   // not stored, and never will be: the key moved on
)

// write stores req.value exactly once, or not at all. See KVStore, "Exactly
// once": a write that got no answer is never followed by a new call of an
// update function until reading back has shown it was not stored; until then
// only the very same message is sent again.
func (kv *KVStore) write(bg *budget, req writeReq) (uint64, error) {
	id := wire.NewMsgID()
	msg := &nats.Msg{Data: req.value, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if req.cas {
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(req.expected, 10))
	}
	// sent is set once an attempt may have reached the server without us
	// hearing back; from then on the write's fate is decided by reading
	// back, never by an error alone.
	sent := false
	// probed is set once the same message was sent again to ask the
	// server's duplicate window, after reading back could not tell.
	probed := false
	for attempt := 1; ; attempt++ {
		s, b, ok := kv.bucket.cached()
		var err error
		if !ok {
			s, b, err = kv.bucket.bind(bg.context())
		}
		if err != nil {
			ctx := bg.context()
			if classify.Transient(err) && ctx.Err() == nil {
				// Nothing was sent on this attempt: trying again is safe.
				if werr := backoff.Sleep(ctx, backoff.Delay(kv.opts.RetryDelay, attempt)); werr == nil {
					continue
				}
			}
			if sent {
				return 0, kv.unknownOutcome(req, id, "the bucket could not be reached to check", err)
			}
			return 0, kv.classify(req.op, req.key, req.create, err)
		}
		if !sent {
			// Nothing of this write has reached the server: a call that
			// ended first (while an update function ran, or during a
			// backoff) stored nothing and says so with what ended it, not
			// with ErrKVUnknownOutcome, which is for writes on the wire.
			if ended := bg.ended(); ended != nil {
				return 0, kv.classify(req.op, req.key, req.create,
					fmt.Errorf("the call ended before the write was sent, so nothing was stored: %w", ended))
			}
		}
		msg.Subject = b.origin.putPrefix + req.key // where nats.go's KeyValue writes it (kv_origin.go)
		actx, cancel := bg.attempt(kv.c)
		ack, err := b.js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return ack.Sequence, nil // a Duplicate ack carries the stored copy's sequence
		}
		ctx := bg.context()
		kv.c.report(s, err)
		err = lostAckAsConflict(err) // a planted bug in natsclient_broken builds only (faultswitch.go)
		if errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
			if id != "" && !sent {
				// The server counts headers toward MaxValueSize, and the
				// identity takes bytes this value needs: write it as
				// jetstream's KeyValue would, without one. The refusal
				// says nothing was stored, so this is no second copy.
				id = ""
				msg.Header.Del(jetstream.MsgIDHeader)
				continue
			}
			return 0, kv.tooLarge(ctx, b, req, msg, err)
		}
		if !sent && classify.NoResponders(err) {
			// Nobody received it: nothing can have been stored.
			if unreachable := b.origin.check(ctx, err); unreachable != nil {
				return 0, kv.classify(req.op, req.key, req.create, unreachable)
			}
			if gone := kv.bucketGone(ctx, b, err); gone != nil {
				return 0, kv.classify(req.op, req.key, req.create, gone)
			}
			if werr := backoff.Sleep(ctx, backoff.Delay(kv.opts.RetryDelay, attempt)); werr != nil {
				return 0, kv.classify(req.op, req.key, req.create, fmt.Errorf("%w; then %w", err, werr))
			}
			continue
		}
		// Once a copy may have landed, no answer to a resend decides its
		// fate alone: a conflict may be our own first copy, stored, and a
		// resend that found no responders (a leader being elected) says
		// nothing of the copy before it. Reading back does.
		if !sent && !classify.MaybeSent(err) {
			return 0, kv.classify(req.op, req.key, req.create, err)
		}
		sent = true
		if id == "" {
			return 0, kv.unknownOutcome(req, id, "the bucket's MaxValueSize left no room for an identity, so reading back cannot tell", err)
		}
		if ctx.Err() != nil {
			return 0, kv.unknownOutcome(req, id, "the call ended before it could check", fmt.Errorf("%w; then %w", err, context.Cause(ctx)))
		}
		kv.c.opts.log(slog.LevelWarn, "kv write got no acknowledgement; checking whether it was stored", slog.String("op", req.op),
			slog.String("bucket", kv.bucket.name), slog.String("key", req.key), slog.String("msg_id", id), attemptAttr(attempt), errAttr(err))
		var (
			out outcome
			rev uint64
		)
		if req.cas {
			out, rev, err = kv.resolve(ctx, req, id)
		} else {
			// An unconditional put: its message ID makes a resend safe.
			out = outcomePending
		}
		switch out {
		case outcomeStored:
			kv.c.opts.log(slog.LevelInfo, "kv write found stored", slog.String("op", req.op), slog.String("bucket", kv.bucket.name),
				slog.String("key", req.key), slog.String("msg_id", id), slog.Uint64("revision", rev))
			return rev, nil
		case outcomeLost:
			sentinel := jetstream.ErrKeyRevisionMismatch
			if req.create {
				sentinel = jetstream.ErrKeyExists
			}
			return 0, kv.classify(req.op, req.key, req.create, fmt.Errorf(
				"the key moved on to revision %d through another write, so ours (expecting %d, lost acknowledgement) was not stored: %w",
				rev, req.expected, sentinel))
		case outcomeUnknown:
			if probed || ctx.Err() != nil {
				return 0, kv.unknownOutcome(req, id, "", err)
			}
			// Ask the server once more with the very same message. It can
			// no longer be stored (the key moved past its expected
			// revision), but a clustered stream checks its duplicate window
			// first and answers "duplicate" with the stored copy's revision
			// if it has our ID. A single server checks the revision first;
			// its refusal only leads back here.
			probed = true
		}
		if werr := backoff.Sleep(ctx, backoff.Delay(kv.opts.RetryDelay, attempt)); werr != nil {
			return 0, kv.unknownOutcome(req, id, "the call ended before it could check", werr)
		}
	}
}

// resolve reads back whether the write with message ID id, expecting the key
// at revision req.expected, was stored. It returns the revision it was stored
// at (outcomeStored) or the key's current revision (outcomeLost).
//
// Reads may be served by a replica that lags behind (direct gets, on a
// replicated bucket), so only positive evidence decides: our ID in the
// bucket means stored; another writer's message directly after the expected
// revision means lost. A view older than the expected revision says nothing
// and gives outcomePending: sending the same message again is always safe,
// and the stream leader's answer to it is the next piece of evidence.
func (kv *KVStore) resolve(ctx context.Context, req writeReq, id string) (outcome, uint64, error) {
	var last *jetstream.RawStreamMsg
	err := kv.retrying(ctx, func(ctx context.Context, b *kvBinding) (err error) {
		last, err = b.origin.lastMsg(ctx, req.key)
		return err
	})
	switch {
	case err != nil:
		return outcomeUnknown, 0, fmt.Errorf("reading the key back failed: %w", err)
	case last == nil, last.Sequence <= req.expected && last.Header.Get(jetstream.MsgIDHeader) != id:
		return outcomePending, 0, nil // still at the expected revision, or a stale view
	case last.Header.Get(jetstream.MsgIDHeader) == id:
		return outcomeStored, last.Sequence, nil
	}
	// The key moved on. Ours, if stored, is the first message on the subject
	// after the expected revision.
	var next *jetstream.RawStreamMsg
	err = kv.retrying(ctx, func(ctx context.Context, b *kvBinding) (err error) {
		next, err = b.origin.msgAfter(ctx, req.key, req.expected+1)
		return err
	})
	switch {
	case err != nil:
		return outcomeUnknown, 0, fmt.Errorf("the key moved on to revision %d; reading what followed revision %d failed: %w",
			last.Sequence, req.expected, err)
	case next == nil:
		return outcomePending, 0, nil // a replica that has not caught up
	case next.Header.Get(jetstream.MsgIDHeader) == id:
		return outcomeStored, next.Sequence, nil
	case next.Sequence == req.expected+1,
		next.Header.Get(jetstream.ExpectedLastSubjSeqHeader) == strconv.FormatUint(req.expected, 10):
		// Another writer's message directly followed the expected revision:
		// the server checked it against the same revision ours expected.
		return outcomeLost, last.Sequence, nil
	}
	return outcomeUnknown, 0, fmt.Errorf(
		"the key moved on to revision %d, and the message that followed revision %d is no longer in the bucket (its History is too short to tell)",
		last.Sequence, req.expected)
}

// tooLarge is the error of a write the server refused for its size. The
// server counts the headers toward the limit as well as the value, so the
// error names both, and the limit as the bucket that refused it has it now:
// for a mirror, its origin, where the write went.
func (kv *KVStore) tooLarge(ctx context.Context, b *kvBinding, req writeReq, msg *nats.Msg, err error) error {
	limit, of := "the bucket's MaxValueSize", ""
	actx, cancel := kv.c.attemptCtx(ctx)
	st, serr := b.stream, error(nil)
	if b.origin.remote {
		limit, of = "the MaxValueSize", " of the "+b.origin.where
		st, serr = b.origin.originStream(actx)
	}
	if serr == nil {
		if info, ierr := st.Info(actx); ierr == nil {
			limit = fmt.Sprintf("%s of %d bytes", limit, info.Config.MaxMsgSize)
		}
	}
	limit += of
	cancel()
	return &kvError{op: req.op, bucket: kv.bucket.name, key: req.key, err: fmt.Errorf(
		"%w: value of %d bytes plus %d bytes of headers exceed %s; the server refused it: %w",
		ErrInvalidArgument, len(req.value), wire.HeaderLen(msg.Header), limit, err)}
}

// unknownOutcome is the error of a write whose fate cannot be known.
func (kv *KVStore) unknownOutcome(req writeReq, id, why string, cause error) error {
	expect := "unconditional"
	if req.cas {
		expect = fmt.Sprintf("expecting revision %d", req.expected)
	}
	carried := "message ID " + id
	if id == "" {
		carried = "no message ID"
	}
	msg := fmt.Sprintf("write %s (%s) got no acknowledgement, and whether it was stored cannot be known",
		expect, carried)
	if why != "" {
		msg += ": " + why
	}
	return &kvError{op: req.op, bucket: kv.bucket.name, key: req.key, sentinels: []error{ErrKVUnknownOutcome},
		err: fmt.Errorf("%s: %w", msg, cause)}
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
	err := kv.retrying(ctx, func(ctx context.Context, b *kvBinding) (err error) {
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
