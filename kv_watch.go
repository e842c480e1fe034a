package natsclient

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// kvWatcher is the jetstream.KeyWatcher KVStore.Watch returns. jetstream's
// own watcher is an ordered consumer that survives nats.go's reconnects but
// dies with its connection; this one follows the client to each new
// connection, resuming after the last revision it delivered, so that a
// watcher a user holds never goes stale.
type kvWatcher struct {
	follower[jetstream.KeyValueEntry]
	kv      *KVStore
	pattern string
	opts    []jetstream.WatchOpt
	updates chan jetstream.KeyValueEntry

	// Kept by the follower's goroutine alone.
	lastRev  uint64 // the last revision delivered; 0: none
	initDone bool   // the end of the initial values was delivered
}

// watchBuffer is how many entries a watcher holds for a slow reader, as
// jetstream's own watcher does.
const watchBuffer = 256

// Updates returns the channel of entries: the current values, a nil entry
// once they have all been delivered, then changes. It is closed when the
// watcher stops.
func (w *kvWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.updates }

// Stop stops the watcher and returns once its goroutine has ended. It is
// idempotent and always returns nil, also after the watch's ctx ended
// (jetstream's own watcher returns nats.ErrBadSubscription then).
func (w *kvWatcher) Stop() error {
	w.stop()
	return nil
}

// start watches on the current connection, from the revision after the last
// one delivered when this is not the first session.
func (w *kvWatcher) start(ctx context.Context, _ *snapshot) (session[jetstream.KeyValueEntry], error) {
	s, b, err := w.kv.bucket.bind(ctx)
	if err != nil {
		return session[jetstream.KeyValueEntry]{}, err
	}
	opts := w.opts
	if w.lastRev > 0 {
		opts = append(opts[:len(opts):len(opts)], jetstream.ResumeFromRevision(w.lastRev+1))
	}
	inner, err := b.kv.Watch(ctx, w.pattern, opts...)
	if err != nil {
		w.kv.c.report(s, err)
		return session[jetstream.KeyValueEntry]{}, err
	}
	return session[jetstream.KeyValueEntry]{items: inner.Updates(), stop: func() { _ = inner.Stop() }}, nil
}

// deliver passes an entry on to Updates. A resumed watch ends its own
// initial values with a nil entry too, which the reader has had already.
func (w *kvWatcher) deliver(ctx context.Context, e jetstream.KeyValueEntry) bool {
	if e == nil {
		if w.initDone {
			return true
		}
		w.initDone = true
	} else {
		w.lastRev = e.Revision()
	}
	select {
	case w.updates <- e:
		return true
	case <-ctx.Done():
		return false
	}
}
