package natsclient

import (
	"context"
	"time"

	"github.com/c360/natsclient/internal/wire"
)

// A KVStore call's start, and the time it has.
//
// Every call but Watch (whose watcher lives as long as its ctx,
// kv_watch.go) begins here. Its arguments are checked first: bad input, a
// store NewKVStore found a fault in, a nil or ended ctx, and a client that
// cannot send (breaker open, not connected, closed) fail the call at once,
// with nothing sent and the breaker not told. Then its budget starts:
// KVOptions.Timeout and the caller's ctx, whichever ends first. Everything
// the call does comes out of it, its retries and the waits between them
// included, and each request gets a share of it (budget.attempt), so that
// after a lost acknowledgement there is time left to find out whether the
// write was stored (kv_write.go).

// begin starts a call on key: it checks the call's arguments and starts
// its budget.
func (kv *KVStore) begin(ctx context.Context, op, key string) (budget, error) {
	if err := kv.checkKey(ctx, op, key); err != nil {
		return budget{}, err
	}
	return kv.newBudget(ctx), nil
}

// beginBucket is begin for a call on the whole bucket.
func (kv *KVStore) beginBucket(ctx context.Context) (budget, error) {
	if err := kv.check(ctx); err != nil {
		return budget{}, err
	}
	return kv.newBudget(ctx), nil
}

// checkKey is check for a call on one key.
func (kv *KVStore) checkKey(ctx context.Context, op, key string) error {
	if kv.err != nil {
		return kv.err
	}
	if err := wire.ValidateKey(kv.bucket.name, key); err != nil {
		return &kvError{op: op, bucket: kv.bucket.name, key: shortKey(key), err: err}
	}
	return kv.check(ctx)
}

// check fails a call at once on a bad store or ctx, and while the client
// cannot send (breaker open, not connected, closed).
func (kv *KVStore) check(ctx context.Context) error {
	if kv.err != nil {
		return kv.err
	}
	if ctx == nil {
		return errNilContext
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := kv.c.current()
	return err
}

// budget is the time a KVStore call has: KVOptions.Timeout and the caller's
// ctx, whichever ends first. Its context is made when the call first needs
// one beyond a single request, so that a write answered at once costs one
// context (its attempt's) rather than two; end releases it.
type budget struct {
	parent   context.Context
	deadline time.Time // the Timeout's end; zero when the parent ends first anyway
	cause    error     // the context's cause when the Timeout ends it
	ctx      context.Context
	cancel   context.CancelFunc
}

func (kv *KVStore) newBudget(ctx context.Context) budget {
	b := budget{parent: ctx, cause: kv.timeoutCause}
	if kv.opts.Timeout > 0 {
		end := time.Now().Add(kv.opts.Timeout)
		if dl, ok := ctx.Deadline(); !ok || end.Before(dl) {
			b.deadline = end
		}
	}
	return b
}

// context returns the budget's context, made on first use.
func (b *budget) context() context.Context {
	if b.ctx == nil {
		if b.deadline.IsZero() {
			b.ctx = b.parent
		} else {
			b.ctx, b.cancel = context.WithDeadlineCause(b.parent, b.deadline, b.cause)
		}
	}
	return b.ctx
}

// ended returns what ended the budget, its context's cause (the caller's
// ctx, or the Timeout), once it has ended, and nil before; it makes no
// context.
func (b *budget) ended() error {
	if b.ctx != nil {
		if b.ctx.Err() != nil {
			return context.Cause(b.ctx)
		}
		return nil
	}
	if b.parent.Err() != nil {
		return context.Cause(b.parent)
	}
	if !b.deadline.IsZero() && !time.Now().Before(b.deadline) {
		return b.cause
	}
	return nil
}

// end releases the budget's context, if one was made.
func (b *budget) end() {
	if b.cancel != nil {
		b.cancel()
	}
}

// attempt bounds one request as Client.attemptCtx does (the client's
// timeout, and at most half of what remains), deriving from the caller's ctx
// while the budget has no context of its own: the attempt ends before the
// budget does, so it needs no other.
func (b *budget) attempt(c *Client) (context.Context, context.CancelFunc) {
	if b.ctx != nil {
		return c.attemptCtx(b.ctx)
	}
	d := c.opts.timeout
	end := b.deadline
	if end.IsZero() {
		end, _ = b.parent.Deadline()
	}
	if !end.IsZero() {
		d = min(d, time.Until(end)/2)
	}
	return context.WithTimeout(b.parent, d)
}
