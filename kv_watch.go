package natsclient

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvWatcher is the jetstream.KeyWatcher KVStore.Watch returns. jetstream's
// own watcher is an ordered consumer that survives nats.go's reconnects but
// dies with its connection; this one follows the client to each new
// connection, resuming after the last revision it delivered, so that a
// watcher a user holds never goes stale.
type kvWatcher struct {
	kv      *KVStore
	pattern string
	opts    []jetstream.WatchOpt

	updates  chan jetstream.KeyValueEntry
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// watchBuffer is how many entries a watcher holds for a slow reader, as
// jetstream's own watcher does.
const watchBuffer = 256

// Updates returns the channel of entries: the current values, a nil entry
// once they have all been delivered, then changes. It is closed when the
// watcher stops.
func (w *kvWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.updates }

// Stop stops the watcher and returns once its goroutine has ended. It is
// idempotent and always returns nil.
func (w *kvWatcher) Stop() error {
	w.stopOnce.Do(w.cancel)
	<-w.done
	return nil
}

// run forwards the current connection's watcher to updates, and on a new
// connection (or the inner watcher ending with its connection) watches again
// from the revision after the last one delivered.
func (w *kvWatcher) run(ctx context.Context, events <-chan StateChange, gen uint64, inner jetstream.KeyWatcher) {
	defer close(w.done)
	defer close(w.updates)
	stopInner := func() {
		if inner != nil {
			_ = inner.Stop()
			inner = nil
		}
	}
	defer stopInner()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var (
		lastRev  uint64
		initDone bool
		failures int
	)
	in := inner.Updates()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-in:
			if !ok {
				// Its connection is gone: watch again on the next one.
				in, inner = nil, nil
				retry.Reset(recheckDelay)
				continue
			}
			if e == nil {
				if initDone {
					continue // a resumed watcher's own end-of-initial-values marker
				}
				initDone = true
			} else {
				lastRev = e.Revision()
			}
			select {
			case w.updates <- e:
			case <-ctx.Done():
				return
			}
			continue
		case _, ok := <-events:
			if !ok {
				return // the client closed
			}
			retry.Reset(recheckDelay)
			continue
		case <-retry.C:
		}
		s, b, err := w.kv.bucket.bind(ctx)
		if err != nil {
			failures++
			retry.Reset(backoff(w.kv.c.opts.reconnectWait, failures))
			continue
		}
		if inner != nil && s.gen == gen {
			continue
		}
		stopInner()
		opts := w.opts
		if lastRev > 0 {
			opts = append(opts[:len(opts):len(opts)], jetstream.ResumeFromRevision(lastRev+1))
		}
		next, err := b.kv.Watch(ctx, w.pattern, opts...)
		if err != nil {
			w.kv.c.report(s, err)
			w.kv.c.opts.logf("kv watch %s/%s on the new connection: %v; retrying", w.kv.bucket.name, w.pattern, err)
			failures++
			retry.Reset(backoff(w.kv.c.opts.reconnectWait, failures))
			continue
		}
		inner, in, gen, failures = next, next.Updates(), s.gen, 0
	}
}
