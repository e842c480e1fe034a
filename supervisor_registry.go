package natsclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go"
)

// The supervisor's registries: the subscriptions it attaches to every new
// connection, and the StateChanges subscribers it tells about transitions.

func (s *supervisor) handleSubscribe(cmd subscribeCmd) {
	if err := refusal(s.phase, s.everConnected(), cmdSubscribe); err != nil {
		cmd.reply <- err
		return
	}
	sub := cmd.sub
	if s.conn != nil {
		if err := sub.attach(s.conn); err != nil && !classify.TransportFailure(err) {
			cmd.reply <- fmt.Errorf("natsclient: subscribe %q: %w", sub.subject, err)
			return
		}
		// A transport failure here means the connection is going away; the
		// subscription is attached again on the next one.
	}
	s.subs[sub] = struct{}{}
	cmd.reply <- nil
}

func (s *supervisor) handleUnsubscribe(cmd unsubscribeCmd) {
	cmd.reply <- s.unsubscribe(cmd.sub, cmd.drain)
}

func (s *supervisor) unsubscribe(sub *Subscription, drain bool) error {
	if _, ok := s.subs[sub]; !ok {
		return fmt.Errorf("natsclient: unsubscribe %q: %w", sub.subject, nats.ErrBadSubscription)
	}
	delete(s.subs, sub)
	inner := sub.inner.Load()
	if inner == nil || s.conn == nil {
		return nil
	}
	var err error
	if drain {
		err = inner.Drain()
	} else {
		err = inner.Unsubscribe()
	}
	if err != nil && !classify.TransportFailure(err) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("natsclient: unsubscribe %q: %w", sub.subject, err)
	}
	return nil
}

func (s *supervisor) handleWatch(cmd watchCmd) {
	if refusal(s.phase, s.everConnected(), cmdWatch) != nil {
		close(cmd.w.ch)
		return
	}
	s.watchers[cmd.w] = struct{}{}
	w, unwatchc, done := cmd.w, s.unwatchc, s.done
	w.stop = context.AfterFunc(cmd.ctx, func() {
		select {
		case unwatchc <- w:
		case <-done:
		}
	})
}

func (s *supervisor) handleUnwatch(w *watcher) {
	if _, ok := s.watchers[w]; ok {
		delete(s.watchers, w)
		close(w.ch)
	}
}
