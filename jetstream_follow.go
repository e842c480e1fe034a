package natsclient

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/c360/natsclient/internal/backoff"
)

// A follower keeps something running on the client's current connection (a
// Consume, a KVStore watch) and starts it again on each new connection the
// client dials, so that a handle a user holds never goes stale. jetstream's
// own consumers and watchers survive nats.go's reconnects but die with their
// connection.
//
// Each run on one connection is a session, with a context of its own that
// ends when the session is replaced or the follower stops: nats.go parks a
// goroutine on the context of every subscription it makes, and only ending
// that context releases it.
type follower[E any] struct {
	c    *Client
	what string // names it in log lines: "consume S/C", "kv watch B/P"
	// start begins a session on the current connection; ctx is the
	// session's own. s is the snapshot the follower looked at.
	start func(ctx context.Context, s *snapshot) (session[E], error)
	// deliver hands on an item of a session; false stops the follower.
	deliver func(ctx context.Context, item E) bool
	// ended runs once the follower has stopped, before Done is closed.
	ended func()
	// resumeOnReconnect starts a new session also when nats.go brought the
	// same connection back: jetstream's ordered consumers (watchers) find
	// theirs lost only by missed heartbeats, 10 s or more after it came
	// back. A pull Consume needs nothing of the kind: jetstream pulls again
	// as soon as its connection is back.
	resumeOnReconnect bool

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// session is a follower's run on one connection.
type session[E any] struct {
	// items are what the session delivers through the follower; nil when
	// it delivers by itself. Closed when the session ends by itself, as a
	// watcher does when its connection dies.
	items <-chan E
	// stop ends the session and returns once it has ended.
	stop func()
}

// recheckDelay is how soon a follower looks at the snapshot again after a
// state change event, or after its session ended by itself. The snapshot is
// already current when an event arrives (the supervisor publishes it before
// it emits the event: supervisor.emit), so the delay is not for the snapshot
// to catch up: it lets one look take in a burst of events (a lost
// connection, its replacement, the breaker closing), and gives a session that
// ended with its connection a moment for the next connection to be installed.
const recheckDelay = 20 * time.Millisecond

// follow starts the first session on the current connection, returning its
// error, and then follows the client until ctx ends or stop is called.
func (f *follower[E]) follow(ctx context.Context) error {
	s, err := f.c.jsSnapshot(ctx)
	if err != nil {
		return err
	}
	life, cancel := context.WithCancel(ctx)
	sctx, endSession := context.WithCancel(life)
	first, err := f.start(sctx, s)
	if err != nil {
		endSession()
		cancel()
		return err
	}
	f.cancel, f.done = cancel, make(chan struct{})
	f.c.base().active.add() // Close waits for run
	// A named domain may be reached through a leaf node's link, which can
	// drop and return while the client's connection stays (domain_link.go).
	var relinked <-chan struct{}
	unlisten := func() {}
	if d := f.c.domain; d != nil && d.name != "" {
		relinked, unlisten = d.link.listen(d)
	}
	// An event arriving later than the first session only makes run look
	// at the generation again.
	go f.run(life, f.c.StateChanges(life), relinked, unlisten, s.gen, first, endSession)
	return nil
}

// stop stops the follower and returns once its goroutine and its session
// have ended. It is idempotent.
func (f *follower[E]) stop() {
	f.stopOnce.Do(f.cancel)
	<-f.done
}

// run delivers the current session's items, and when a state change shows a
// new connection generation (or, with resumeOnReconnect, the connection back
// after nats.go reconnected it; or the domain's link is back; or the session
// ended by itself) ends the session and starts another on the current
// connection, retrying with backoff until that works.
func (f *follower[E]) run(ctx context.Context, events <-chan StateChange, relinked <-chan struct{}, unlisten func(), gen uint64, cur session[E], endCur context.CancelFunc) {
	defer f.c.base().active.done()
	defer close(f.done)
	defer unlisten()
	if f.ended != nil {
		defer f.ended()
	}
	end := func() {
		if endCur != nil {
			cur.stop()
			endCur()
			cur, endCur = session[E]{}, nil
		}
	}
	defer end()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failures := 0
	stale := false // the session's connection came back: start another
	for {
		select {
		case <-ctx.Done():
			return
		case item, ok := <-cur.items:
			if !ok {
				end() // its connection is gone: start again on the next one
				retry.Reset(recheckDelay)
			} else if !f.deliver(ctx, item) {
				return
			}
			continue
		case ev, ok := <-events:
			if !ok {
				return // the client closed
			}
			if ev.To == StateConnected && ev.From != StateConnected {
				// Retries waiting out the outage's backoff wait no longer.
				stale, failures = stale || f.resumeOnReconnect, 0
			}
			retry.Reset(recheckDelay)
			continue
		case <-relinked:
			// The domain answers again after it did not: what the session
			// had there is gone with the link, and the backoff of retries
			// that failed while it was down is over (a failed first try now
			// is retried at once, not after the longest wait).
			stale, failures = true, 0
		case <-retry.C:
		}
		s, err := f.c.jsSnapshot(ctx)
		if err != nil || (s.gen == gen && endCur != nil && !stale) {
			continue // not connected yet, or nothing changed
		}
		end()
		sctx, endSession := context.WithCancel(ctx)
		next, err := f.startBounded(sctx, endSession, s)
		if err != nil {
			endSession()
			failures++
			f.c.opts.log(slog.LevelWarn, "resuming on the new connection failed; retrying", slog.String("what", f.what), errAttr(err))
			retry.Reset(backoff.Delay(f.c.opts.reconnectWait, failures))
			continue
		}
		cur, endCur, gen, failures, stale = next, endSession, s.gen, 0, false
	}
}

// startBounded is start within the client's timeout. The calls a start makes
// take the session's ctx, which must live as long as the session (nats.go
// ties a subscription to it), so they would wait for an answer as long as
// the follower's own ctx: jetstream's creation of a watch's consumer takes
// its deadline from it, and one request lost on a link that just came back
// would hold the follower until then. Past the bound the session's ctx is
// ended, which ends the calls, and the start counts as failed.
func (f *follower[E]) startBounded(ctx context.Context, endSession context.CancelFunc, s *snapshot) (session[E], error) {
	timer := time.AfterFunc(f.c.opts.timeout, endSession)
	next, err := f.start(ctx, s)
	if timer.Stop() {
		return next, err
	}
	if err == nil {
		next.stop() // it started as the bound passed: its ctx is ended
	}
	return session[E]{}, fmt.Errorf("natsclient: %s: not started within %v: %w", f.what, f.c.opts.timeout, context.DeadlineExceeded)
}
