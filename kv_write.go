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

// One write, applied exactly once or not at all.
//
// Every write a KVStore makes (Put, Create, Update, and each attempt of an
// update loop, kv_update.go) is one message: the value, a Nats-Msg-Id header
// of its own (the write's identity) and, for a compare-and-swap, the
// revision it expects the key at, in the Nats-Expected-Last-Subject-Sequence
// header. write sends it in two steps, each a loop named for its concern:
//
//  1. deliver sends the message until the server answers it. An attempt
//     that cannot have stored it is made again: the bucket could not be
//     bound to the current connection (nothing was sent), or nobody
//     received the message (no responders: a stream leader being elected).
//     A refusal for its size with the identity in it is sent once more
//     without one, as jetstream's KeyValue sends it: the server counts
//     headers toward MaxValueSize. An answer ends the write: an
//     acknowledgement gives its revision, a refusal (a conflict, an invalid
//     message) its error.
//  2. An attempt that failed without an answer (a timeout, a lost
//     connection) may have been stored or not, and calling an update
//     function again could apply its change twice. settle finds out by
//     reading back what the origin bucket holds (resolve), trusting only
//     positive evidence: our identity at the key means stored, and its
//     revision is the answer; another writer's message right after the
//     expected revision means ours was refused and never will be stored
//     (the update loop may read and call its function again); a key still
//     at the expected revision, or a replica's view that lags, says nothing,
//     and the very same message is sent again, which the server's duplicate
//     window cannot store twice. When reading back cannot tell (the message
//     that would say so was overwritten), the same message is sent once more
//     as a probe: a clustered stream checks its duplicate window before the
//     expected revision and answers "duplicate" with the stored copy's
//     revision (a single server checks the revision first). After that, or
//     when the budget ends, the write ends in ErrKVUnknownOutcome, and no
//     update function is called again for it.
//
// An unconditional Put needs no reading back: resending its message under
// the same identity is safe by itself. A write sent without an identity
// cannot be recognised, so a lost acknowledgement of it is
// ErrKVUnknownOutcome at once. The budget (kv_budget.go) bounds both steps,
// and gives each request a share of it, so that after a lost
// acknowledgement there is time left to read back.

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

// write stores req.value exactly once, or not at all, within the budget bg,
// and returns the revision it was stored at.
func (kv *KVStore) write(bg *budget, req writeReq) (uint64, error) {
	w := kv.newInflight(req)
	rev, maybeStored, err := w.deliver(bg)
	if !maybeStored {
		return rev, err
	}
	if w.id == "" {
		return 0, w.unknownOutcome("the bucket's MaxValueSize left no room for an identity, so reading back cannot tell", err)
	}
	return w.settle(bg, err)
}

// inflight is a write on its way: its request, the one message ever sent for
// it, and the attempts made so far, which the waits between them grow with.
// Its budget is passed to each step, as a ctx would be: kept in the struct,
// it would leave the caller's stack for the heap with the message.
type inflight struct {
	kv      *KVStore
	req     writeReq
	msg     *nats.Msg
	id      string // the message's Nats-Msg-Id; "" once deliver dropped it for room
	attempt int    // the current attempt, from 1
}

func (kv *KVStore) newInflight(req writeReq) inflight {
	id := wire.NewMsgID()
	msg := &nats.Msg{Data: req.value, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if req.cas {
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(req.expected, 10))
	}
	return inflight{kv: kv, req: req, msg: msg, id: id, attempt: 1}
}

// deliver sends the write until the server answers it, and returns the
// answer: the revision it was stored at, or the error it was refused with.
// Attempts that cannot have stored it are made again while the budget
// lasts. maybeStored is true when an attempt failed without an answer and
// may have been stored: err is that attempt's failure, for settle to
// decide.
func (w *inflight) deliver(bg *budget) (rev uint64, maybeStored bool, err error) {
	req := w.req
	for {
		s, b, err := w.bound(bg)
		if err != nil {
			return 0, false, w.kv.classify(req.op, req.key, req.create, err)
		}
		// Nothing of this write has reached the server: a call that ended
		// first (while an update function ran, or during a wait) stored
		// nothing and says so with what ended it, not with
		// ErrKVUnknownOutcome, which is for writes on the wire.
		if ended := bg.ended(); ended != nil {
			return 0, false, w.kv.classify(req.op, req.key, req.create,
				fmt.Errorf("the call ended before the write was sent, so nothing was stored: %w", ended))
		}
		ack, err := w.send(bg, s, b)
		if err == nil {
			return ack.Sequence, false, nil
		}
		ctx := bg.context()
		switch {
		case errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum):
			if w.id == "" {
				return 0, false, w.tooLarge(ctx, b, err)
			}
			// The identity takes bytes this value needs: write it as
			// jetstream's KeyValue would, without one. The refusal says
			// nothing was stored, so this is no second copy.
			w.id = ""
			w.msg.Header.Del(jetstream.MsgIDHeader)
			w.attempt++
		case classify.NoResponders(err):
			// Nobody received it: nothing can have been stored.
			if unreachable := b.origin.check(ctx, err); unreachable != nil {
				return 0, false, w.kv.classify(req.op, req.key, req.create, unreachable)
			}
			if gone := w.kv.bucketGone(ctx, b, err); gone != nil {
				return 0, false, w.kv.classify(req.op, req.key, req.create, gone)
			}
			if werr := w.wait(bg); werr != nil {
				return 0, false, w.kv.classify(req.op, req.key, req.create, fmt.Errorf("%w; then %w", err, werr))
			}
		case classify.MaybeSent(err):
			return 0, true, err
		default:
			return 0, false, w.kv.classify(req.op, req.key, req.create, err)
		}
	}
}

// settle decides the fate of a write whose attempt failed with err and got
// no answer, so that it may have been stored (see the top of this file): it
// reads back, and sends the very same message again, until the write is
// found stored, found refused, or cannot be known.
func (w *inflight) settle(bg *budget, err error) (uint64, error) {
	ctx := bg.context()
	req := w.req
	// probed is set once the same message was sent again to ask the
	// server's duplicate window, after reading back could not tell.
	probed := false
	for {
		if ctx.Err() != nil {
			return 0, w.unknownOutcome("the call ended before it could check", fmt.Errorf("%w; then %w", err, context.Cause(ctx)))
		}
		w.kv.c.opts.log(slog.LevelWarn, "kv write got no acknowledgement; checking whether it was stored", slog.String("op", req.op),
			slog.String("bucket", w.kv.bucket.name), slog.String("key", req.key), slog.String("msg_id", w.id), attemptAttr(w.attempt), errAttr(err))
		// An unconditional put: its message ID makes a resend safe.
		out, rev := outcomePending, uint64(0)
		if req.cas {
			out, rev, err = w.kv.resolve(ctx, req, w.id)
		}
		switch out {
		case outcomeStored:
			w.kv.c.opts.log(slog.LevelInfo, "kv write found stored", slog.String("op", req.op), slog.String("bucket", w.kv.bucket.name),
				slog.String("key", req.key), slog.String("msg_id", w.id), slog.Uint64("revision", rev))
			return rev, nil
		case outcomeLost:
			sentinel := jetstream.ErrKeyRevisionMismatch
			if req.create {
				sentinel = jetstream.ErrKeyExists
			}
			return 0, w.kv.classify(req.op, req.key, req.create, fmt.Errorf(
				"the key moved on to revision %d through another write, so ours (expecting %d, lost acknowledgement) was not stored: %w",
				rev, req.expected, sentinel))
		case outcomeUnknown:
			if probed || ctx.Err() != nil {
				return 0, w.unknownOutcome("", err)
			}
			// Ask the server once more with the very same message. It can
			// no longer be stored (the key moved past its expected
			// revision), but a clustered stream checks its duplicate window
			// first and answers "duplicate" with the stored copy's revision
			// if it has our ID. A single server checks the revision first;
			// its refusal only leads back here.
			probed = true
		}
		if werr := w.wait(bg); werr != nil {
			return 0, w.unknownOutcome("the call ended before it could check", werr)
		}
		s, b, berr := w.bound(bg)
		if berr != nil {
			return 0, w.unknownOutcome("the bucket could not be reached to check", berr)
		}
		ack, serr := w.send(bg, s, b)
		if serr == nil {
			return ack.Sequence, nil // a Duplicate ack carries the stored copy's sequence
		}
		if errors.Is(serr, jetstream.ErrStreamMessageExceedsMaximum) {
			return 0, w.tooLarge(ctx, b, serr)
		}
		// Once a copy may have landed, no answer to a resend decides its
		// fate alone: a conflict may be our own first copy, stored, and a
		// resend that found no responders (a leader being elected) says
		// nothing of the copy before it. Reading back does.
		err = serr
	}
}

// bound returns the bucket bound to the client's current connection,
// binding it anew when the client dialled a new one. Binding sends nothing
// of the write, so a transient failure is tried again, after a wait, while
// the budget lasts.
func (w *inflight) bound(bg *budget) (*snapshot, *kvBinding, error) {
	for {
		if s, b, ok := w.kv.bucket.cached(); ok {
			return s, b, nil
		}
		ctx := bg.context()
		s, b, err := w.kv.bucket.bind(ctx)
		if err == nil {
			return s, b, nil
		}
		if !classify.Transient(err) || ctx.Err() != nil || w.wait(bg) != nil {
			return nil, nil, err
		}
	}
}

// send sends the message once on binding b, where nats.go's KeyValue writes
// it (kv_origin.go), and waits for the answer for at most one request's
// share of the budget. A failure is reported to the breaker, which counts
// only transport failures.
func (w *inflight) send(bg *budget, s *snapshot, b *kvBinding) (*jetstream.PubAck, error) {
	w.msg.Subject = b.origin.putPrefix + w.req.key
	actx, cancel := bg.attempt(w.kv.c)
	ack, err := b.js.PublishMsg(actx, w.msg)
	cancel()
	if err != nil {
		w.kv.c.report(s, err)
		err = lostAckAsConflict(err) // a planted bug in natsclient_broken builds only (faultswitch.go)
	}
	return ack, err
}

// wait waits before the next attempt, backoff.Delay (internal/backoff) grown
// by the attempts made so far, or until the budget ends: it returns the
// budget's cause then.
func (w *inflight) wait(bg *budget) error {
	err := backoff.Sleep(bg.context(), backoff.Delay(w.kv.opts.RetryDelay, w.attempt))
	w.attempt++
	return err
}

// outcome is what reading back tells about a write whose answer was lost.
type outcome int

const (
	outcomeUnknown outcome = iota // cannot be decided: ErrKVUnknownOutcome
	outcomeStored                 // the write was stored
	outcomePending                // not stored, and may still be: send it again
	outcomeLost                   // not stored, and never will be: the key moved on
)

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
	err := kv.retryRead(ctx, shareOfBudget, func(ctx context.Context, b *kvBinding) (err error) {
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
	err = kv.retryRead(ctx, shareOfBudget, func(ctx context.Context, b *kvBinding) (err error) {
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
func (w *inflight) tooLarge(ctx context.Context, b *kvBinding, err error) error {
	limit, of := "the bucket's MaxValueSize", ""
	actx, cancel := w.kv.c.attemptCtx(ctx)
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
	return &kvError{op: w.req.op, bucket: w.kv.bucket.name, key: w.req.key, err: fmt.Errorf(
		"%w: value of %d bytes plus %d bytes of headers exceed %s; the server refused it: %w",
		ErrInvalidArgument, len(w.req.value), wire.HeaderLen(w.msg.Header), limit, err)}
}

// unknownOutcome is the error of a write whose fate cannot be known.
func (w *inflight) unknownOutcome(why string, cause error) error {
	expect := "unconditional"
	if w.req.cas {
		expect = fmt.Sprintf("expecting revision %d", w.req.expected)
	}
	carried := "message ID " + w.id
	if w.id == "" {
		carried = "no message ID"
	}
	msg := fmt.Sprintf("write %s (%s) got no acknowledgement, and whether it was stored cannot be known",
		expect, carried)
	if why != "" {
		msg += ": " + why
	}
	return &kvError{op: w.req.op, bucket: w.kv.bucket.name, key: w.req.key, sentinels: []error{ErrKVUnknownOutcome},
		err: fmt.Errorf("%s: %w", msg, cause)}
}
