package natsclient

import (
	"context"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// kvWatcher is the jetstream.KeyWatcher KVStore.Watch and a bucket's watch
// methods return. jetstream's own watcher is an ordered consumer that
// survives nats.go's reconnects but dies with its connection; this one
// follows the client to each new connection, resuming after the last
// revision it delivered, so that a watcher a user holds never goes stale.
//
// It also stops when the client begins to close, and then reads what
// jetstream's watcher still holds: jetstream's subscription blocks while its
// channel is full, and the connection's drain waits for it, so a Close
// called by the goroutine that reads Updates would otherwise wait for
// itself.
type kvWatcher struct {
	follower[jetstream.KeyValueEntry]
	h       *bucketHandle
	keys    []string
	opts    []jetstream.WatchOpt
	updates chan jetstream.KeyValueEntry

	// Kept by the follower's goroutine alone.
	lastRev  uint64 // the last revision delivered; 0: none
	initDone bool   // the end of the initial values was delivered
}

// newKVWatcher starts watching keys (subjects in the bucket, with
// wildcards) in h's bucket; ctx ends the watch.
func newKVWatcher(ctx context.Context, h *bucketHandle, keys []string, opts []jetstream.WatchOpt) (*kvWatcher, error) {
	w := &kvWatcher{h: h, keys: slices.Clone(keys), opts: opts, updates: make(chan jetstream.KeyValueEntry, watchBuffer)}
	w.follower = follower[jetstream.KeyValueEntry]{c: h.c, what: "kv watch " + h.name + "/" + strings.Join(keys, ","),
		start: w.start, deliver: w.deliver, ended: func() { close(w.updates) }, resumeOnReconnect: true}
	if err := w.follow(ctx); err != nil {
		return nil, err
	}
	return w, nil
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
	s, b, err := w.h.bind(ctx)
	if err != nil {
		return session[jetstream.KeyValueEntry]{}, err
	}
	opts := w.opts
	if w.lastRev > 0 {
		opts = append(opts[:len(opts):len(opts)], jetstream.ResumeFromRevision(w.lastRev+1))
	}
	// jetstream prefixes the keys in the slice it is given: a copy each time.
	inner, err := b.kv.WatchFiltered(ctx, slices.Clone(w.keys), opts...)
	if err != nil {
		w.h.c.report(s, err)
		return session[jetstream.KeyValueEntry]{}, err
	}
	return session[jetstream.KeyValueEntry]{items: inner.Updates(), stop: func() {
		// jetstream's subscription may be blocked handing an entry to
		// its full channel: read the channel until jetstream closes it,
		// which it does once the subscription has ended, so that no
		// goroutine of nats.go's stays blocked (nor a drain waiting for it).
		_ = inner.Stop()
		for range inner.Updates() {
		}
	}}, nil
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
	case <-w.h.c.sup.stopping(): // the client is closing: see kvWatcher
		return false
	}
}
