package natsclient

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// stateBuffer is how many events a subscriber may leave unread before older
// ones are dropped.
const stateBuffer = 16

// watcher is one StateChanges subscriber. Only the supervisor sends on or
// closes ch.
type watcher struct {
	ch   chan StateChange
	stop func() bool // deregisters the context.AfterFunc that ends the watch
	// lagging is set when the buffer overflowed and cleared when the
	// subscriber is found to have caught up (its buffer empty).
	lagging bool
}

// deliver hands ev to the subscriber without ever blocking. When the buffer
// is full, everything in it is dropped and counted in ev.Missed, and until
// the subscriber has emptied its buffer each new event replaces what is
// unread: a stalled subscriber's next read is the present, not history.
func (w *watcher) deliver(ev StateChange) {
	if len(w.ch) == 0 {
		w.lagging = false
	}
	if !w.lagging {
		select {
		case w.ch <- ev:
			return
		default:
			w.lagging = true
		}
	}
	for drained := false; !drained; {
		select {
		case old := <-w.ch:
			ev.Missed += 1 + old.Missed
		default:
			drained = true
		}
	}
	// The buffer is empty and the supervisor is its only sender: this send
	// cannot block.
	w.ch <- ev
}

// StateChanges returns a channel of state and breaker changes, buffered for
// this subscriber alone. It is closed when ctx ends or the client closes. A
// subscriber that stops reading never slows the client: see
// StateChange.Missed.
//
// A nil ctx is refused, as by every call that takes one (see "Contexts" in
// the package doc); StateChanges has no error to return, so the channel it
// hands back holds one event, the present state, whose Err matches
// ErrInvalidArgument and says why, and is then closed. Use
// context.Background() to watch until the client closes.
func (c *Client) StateChanges(ctx context.Context) <-chan StateChange {
	if ctx == nil {
		return c.refusedWatch(fmt.Errorf("natsclient: state changes: %w", errNilContext))
	}
	w := &watcher{ch: make(chan StateChange, stateBuffer)}
	c.ensureRunning()
	c.sup.watch(ctx, w)
	return w.ch
}

// refusedWatch is the channel StateChanges returns for a call it refuses:
// one event that carries err and shows the present state, then closed. No
// supervisor holds it.
func (c *Client) refusedWatch(err error) <-chan StateChange {
	c.opts.log(slog.LevelError, "state changes refused", errAttr(err))
	s := c.snap.Load()
	ch := make(chan StateChange, 1)
	ch <- StateChange{From: s.state, To: s.state, Breaker: s.breaker, Err: err, At: time.Now()}
	close(ch)
	return ch
}
