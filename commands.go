package natsclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Commands are how public methods talk to the supervisor goroutine: through
// the supervisor's methods at the end of this file, which send them on its
// channels. Each request that needs an answer carries its own reply channel
// of capacity 1, so the supervisor never blocks on a caller that has gone
// away. A Connect is withdrawn by sending its own *connectCmd again, on
// cancelConnectc.

type connectCmd struct {
	reply chan error
}

type closeCmd struct {
	ctx   context.Context
	reply chan error
	// caller is the goroutine that called Close. When it is a message
	// handler's, the supervisor answers on fromHandler instead, at once, with
	// what the handler must wait for: it cannot wait for the drain, which
	// waits for it.
	caller      uint64
	fromHandler chan handlerClose
	// fromConsumer is set when caller runs a Consume handler: the
	// consumer's subscription is jetstream's, not in the supervisor's
	// registry, so Close looks it up itself (Client.consumers).
	fromConsumer bool
}

// handlerClose is what a Close called from a message handler waits for: the
// other subscriptions' drains, each signalled by nats.go closing its
// channel.
type handlerClose struct {
	drained []<-chan nats.SubStatus
}

// wait waits until each drain has ended, or ctx.
func (hc handlerClose) wait(ctx context.Context) error {
	for _, ch := range hc.drained {
		for open := true; open; {
			select {
			case _, open = <-ch:
			case <-ctx.Done():
				return fmt.Errorf("natsclient: close: drain did not finish: %w", context.Cause(ctx))
			}
		}
	}
	return nil
}

type subscribeCmd struct {
	sub   *Subscription
	reply chan error
}

type unsubscribeCmd struct {
	sub   *Subscription
	drain bool
	reply chan error
}

type watchCmd struct {
	ctx context.Context
	w   *watcher
}

// failureReport is a transport failure seen outside the supervisor. gen is
// the connection generation the call used, so a late report about a
// connection that has since been replaced is ignored.
type failureReport struct {
	gen uint64
	err error
}

// connEventKind names what nats.go told us about one connection.
type connEventKind int

const (
	evDisconnected connEventKind = iota
	evReconnected
	evClosed
	evAsyncError
)

// connEvent is forwarded from nats.go's callback goroutine. The callbacks do
// nothing else: state is the supervisor's alone.
type connEvent struct {
	kind connEventKind
	nc   *nats.Conn
	err  error
}

// dialResult is the outcome of one dial, run off the supervisor loop.
// dialer is the connection's own: it names the connection in the reports
// of nats.go's reconnect loop (roundReport).
type dialResult struct {
	nc     *nats.Conn
	dialer *lifeDialer
	err    error
}

// roundReport comes from nats.go's reconnect loop before each of its waits
// (its CustomReconnectDelayCB): failed is why the round of attempts before
// it failed, nil before the first round. The supervisor counts the failure
// and answers how long to wait, so that nats.go's next attempt and the
// breaker's probe fall at the same instant, decided in one place.
type roundReport struct {
	dialer *lifeDialer
	failed error
	reply  chan time.Duration
}

// probeResult is the outcome of a probe of a live connection.
type probeResult struct {
	nc  *nats.Conn
	err error
}

func newReply() chan error { return make(chan error, 1) }

// The supervisor's side of each command: the methods Client calls. Only
// these send on the supervisor's channels.

// connect asks for a connection and waits until the server has answered on
// one, a permanent error or Close ends the wait, or ctx ends, when the
// request is withdrawn (unless the supervisor answered meanwhile) and the
// error names the last failed attempt.
func (s *supervisor) connect(ctx context.Context) error {
	cmd := &connectCmd{reply: newReply()}
	if err := send(ctx, s, s.connectc, cmd); err != nil {
		return s.connectAbandoned(err)
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
	}
	select {
	case err := <-cmd.reply:
		return err
	case s.cancelConnectc <- cmd:
	case <-s.done:
	}
	select {
	case err := <-cmd.reply:
		return err
	default:
		return s.connectAbandoned(ctx.Err())
	}
}

func (s *supervisor) connectAbandoned(err error) error {
	if last := s.c.snap.Load().stats.LastError; last != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("natsclient: connect to %s: %w (last attempt: %w)", redactServers(s.servers), err, last)
	}
	return err
}

// close asks the supervisor to close and waits until its loop has ended and,
// unless it is called from a user callback (which runs on that goroutine),
// the callbacks have run. caller is the calling goroutine and fromConsumer
// says it runs a Consume handler. Called from a message handler, it returns
// fromHandler true, with the end of the wait for the other subscriptions'
// drains (see closeCmd).
func (s *supervisor) close(ctx context.Context, caller uint64, fromConsumer bool) (fromHandler bool, err error) {
	cmd := closeCmd{ctx: ctx, reply: newReply(), caller: caller, fromHandler: make(chan handlerClose, 1), fromConsumer: fromConsumer}
	select {
	case s.closec <- cmd:
		select {
		case hc := <-cmd.fromHandler:
			return true, hc.wait(ctx)
		case err = <-cmd.reply:
		}
		<-s.done
	case <-s.done: // already closed
	}
	if !s.callbacks.inCallback.Load() {
		<-s.callbacks.done
	}
	return false, err
}

// subscribe adds sub to the registry, attached to the connection when there
// is one.
func (s *supervisor) subscribe(sub *Subscription) error {
	cmd := subscribeCmd{sub: sub, reply: newReply()}
	return request(s, s.subscribec, cmd, cmd.reply)
}

// unsubscribe removes sub from the registry, draining it first when drain is
// set.
func (s *supervisor) unsubscribe(sub *Subscription, drain bool) error {
	cmd := unsubscribeCmd{sub: sub, drain: drain, reply: newReply()}
	return request(s, s.unsubscribec, cmd, cmd.reply)
}

// watch registers w as a state subscriber until ctx ends, closing its
// channel at once when the supervisor refuses it or has stopped.
func (s *supervisor) watch(ctx context.Context, w *watcher) {
	if err := send(ctx, s, s.watchc, watchCmd{ctx: ctx, w: w}); err != nil {
		close(w.ch)
	}
}

// reportFailure hands a transport failure seen outside the supervisor to it,
// without ever waiting: if the buffer is full the supervisor is already busy
// with failures, and one more adds nothing. It is the only way failures
// reach the supervisor from other goroutines.
func (s *supervisor) reportFailure(gen uint64, err error) {
	select {
	case s.failc <- failureReport{gen: gen, err: err}:
	default:
	}
}

// stopping is closed when Close begins.
func (s *supervisor) stopping() <-chan struct{} { return s.life.Done() }

// send delivers a command to the supervisor, giving up when ctx ends or the
// supervisor has stopped: no call can hang on a supervisor that is gone.
func send[T any](ctx context.Context, s *supervisor, ch chan<- T, cmd T) error {
	select {
	case ch <- cmd:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
}

// request sends a registry command and waits for its reply. The
// supervisor answers these at once, so no ctx bounds them; a supervisor
// that has stopped ends them with ErrClosed. A reply already given wins over
// the supervisor stopping.
func request[T any](s *supervisor, ch chan<- T, cmd T, reply chan error) error {
	if err := send(context.Background(), s, ch, cmd); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-s.done:
		select {
		case err := <-reply:
			return err
		default:
			return ErrClosed
		}
	}
}
