package natsclient

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Commands are how public methods talk to the supervisor goroutine, over
// the supervisor's channels. Each request that needs an answer carries its
// own reply channel of capacity 1, so the supervisor never blocks on a
// caller that has gone away. A Connect is withdrawn by sending its own
// *connectCmd again, on cancelConnectc.

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

// send delivers a command to the supervisor, giving up when ctx ends or the
// client has stopped: no call can hang on a supervisor that is gone.
func send[T any](ctx context.Context, c *Client, ch chan<- T, cmd T) error {
	select {
	case ch <- cmd:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.sup.done:
		return ErrClosed
	}
}

// await waits for a command's reply. A reply already given wins over the
// client stopping, so a Close that completed reports its own result.
func await(ctx context.Context, c *Client, reply chan error) error {
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.sup.done:
		select {
		case err := <-reply:
			return err
		default:
			return ErrClosed
		}
	}
}
