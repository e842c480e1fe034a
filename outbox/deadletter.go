package outbox

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats.go"
	bolt "go.etcd.io/bbolt"
)

// DeadLetter is a message its stream refused for good (no stream captures
// its subject, it is larger than the stream allows, the stream is full and
// discards new messages, an expected-* header of its own did not hold). It
// stays in the file until Requeue or Discard.
type DeadLetter struct {
	ID      string
	Subject string
	Data    []byte
	Header  nats.Header
	// Err is the refusal, as text.
	Err string
	// At is when the message was refused.
	At time.Time
}

// DeadLetters returns the dead letters, oldest refusal first. A message
// whose stored bytes could not be decoded is among them with its sequence's
// id, no subject, the bytes as stored in Data, and Err saying so; it can be
// discarded, not requeued.
func (ob *Outbox) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	if err := ob.check(ctx, "DeadLetters"); err != nil {
		return nil, err
	}
	var out []DeadLetter
	err := ob.st.view(func(tx *bolt.Tx) error {
		return tx.Bucket(deadBucket).ForEach(func(k, v []byte) error {
			out = append(out, readDeadLetter(k, v, ob.st.legacyUntil))
			return nil
		})
	})
	if err != nil {
		return nil, ob.storeErr("dead letters", err)
	}
	slices.SortStableFunc(out, func(a, b DeadLetter) int { return a.At.Compare(b.At) })
	return out, nil
}

// Requeue puts the dead letter id back at the end of the queue, with its id,
// under the same budget and overflow policy as Publish (with Reject, a full
// outbox is an error matching ErrFull and the letter stays). An unknown id
// matches natsclient.ErrInvalidArgument.
func (ob *Outbox) Requeue(ctx context.Context, id string) error {
	if err := ob.check(ctx, "Requeue"); err != nil {
		return err
	}
	var a admission
	err := ob.st.update(func(tx *bolt.Tx) error {
		if err := ob.refuseClosed(); err != nil {
			return err
		}
		dead := tx.Bucket(deadBucket)
		v := dead.Get([]byte(id))
		if v == nil {
			return unknownDeadLetter(id)
		}
		_, _, r, err := decodeDeadLetter([]byte(id), v, ob.st.legacyUntil)
		if err != nil {
			return err
		}
		r.enqueued = time.Now()
		if a, err = ob.st.admit(tx, r, id, ob.opts.maxBytes, ob.opts.overflow); err != nil || a.full {
			return err
		}
		return dead.Delete([]byte(id))
	})
	if err != nil {
		return ob.storeErr("requeue "+id, err)
	}
	if a.full {
		return fmt.Errorf("%w: requeue %s: no room in the budget of %d bytes", ErrFull, id, ob.opts.maxBytes)
	}
	ob.noteDropped(a)
	ob.kick()
	return nil
}

// Discard deletes the dead letter id. An unknown id matches
// natsclient.ErrInvalidArgument.
func (ob *Outbox) Discard(ctx context.Context, id string) error {
	if err := ob.check(ctx, "Discard"); err != nil {
		return err
	}
	err := ob.st.update(func(tx *bolt.Tx) error {
		dead := tx.Bucket(deadBucket)
		if dead.Get([]byte(id)) == nil {
			return unknownDeadLetter(id)
		}
		return dead.Delete([]byte(id))
	})
	if err != nil {
		return ob.storeErr("discard "+id, err)
	}
	return nil
}

// readDeadLetter returns the dead letter stored under id; one that cannot be
// decoded is returned as its raw bytes, with an Err that says so, rather than
// hiding the others.
func readDeadLetter(id, v []byte, legacyUntil uint64) DeadLetter {
	at, cause, r, err := decodeDeadLetter(id, v, legacyUntil)
	if err == nil {
		return DeadLetter{ID: r.id, Subject: r.subject, Data: r.data, Header: r.header, Err: cause, At: at}
	}
	dl := DeadLetter{ID: string(id), Data: bytes.Clone(v), Err: err.Error()}
	if at, cause, raw, derr := decodeDead(v); derr == nil {
		// The refusal is readable, only the message is not (a record set
		// aside by the forwarder).
		dl.At, dl.Data = at, bytes.Clone(raw)
		dl.Err = cause
		if !strings.HasPrefix(cause, undecodableCause) {
			dl.Err += " (and " + err.Error() + ")"
		}
	}
	return dl
}

// decodeDeadLetter parses the dead letter stored under id; legacyUntil is
// the store's (see decodeRecordInto).
func decodeDeadLetter(id, v []byte, legacyUntil uint64) (time.Time, string, *record, error) {
	at, cause, raw, err := decodeDead(v)
	if err != nil {
		return time.Time{}, "", nil, fmt.Errorf("dead letter %s: %w", id, err)
	}
	r, err := decodeRecord(0, raw, legacyUntil)
	if err != nil {
		return time.Time{}, "", nil, fmt.Errorf("dead letter %s: %w", id, err)
	}
	if r.id != string(id) {
		// A record is stored under its own id: this one was moved (the
		// forwarder set it aside because its key did not match).
		return time.Time{}, "", nil, fmt.Errorf("dead letter %s: %w: it holds the record of %s", id, errCorruptRecord, r.id)
	}
	return at, cause, r, nil
}

func unknownDeadLetter(id string) error {
	return fmt.Errorf("%w: no dead letter with id %q", natsclient.ErrInvalidArgument, id)
}

// check refuses a call with a nil or ended ctx, or after Close.
func (ob *Outbox) check(ctx context.Context, op string) error {
	if ctx == nil {
		return fmt.Errorf("%w: outbox.%s: nil context", natsclient.ErrInvalidArgument, op)
	}
	if ob.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}
