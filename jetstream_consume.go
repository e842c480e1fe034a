package natsclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumption is a running Consume: messages of a durable consumer delivered
// to a handler, on whichever connection the client has. Stop ends it.
type Consumption struct {
	c                *Client
	stream, consumer string
	handler          func(jetstream.Msg) error

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// Consume delivers the messages of the durable consumer named consumer on
// stream to handler, one at a time, until Stop is called, ctx ends or the
// client is closed. The consumer is bound if it exists (so a consumer
// created beforehand with its own configuration, through Stream and
// CreateOrUpdateConsumer, is used as it is) and created otherwise, as a
// durable pull consumer with explicit acknowledgement.
//
// A message is acknowledged when handler returns nil and negatively
// acknowledged (redelivered) when it returns an error: only what the handler
// accepted is acked. A handler may ack or nak by itself; the second
// acknowledgement is then ignored. A panic in handler is not recovered.
//
// Consuming continues across nats.go's reconnects and, when the client had
// to dial a new connection, resumes on it: the consumer is durable, so
// nothing acked is delivered again and nothing unacked is lost. Errors
// setting it up on the current connection are returned; later ones are
// retried with backoff and logged.
func (c *Client) Consume(ctx context.Context, stream, consumer string, handler func(jetstream.Msg) error) (*Consumption, error) {
	if err := validateStreamName("stream", stream); err != nil {
		return nil, err
	}
	if err := validateStreamName("consumer", consumer); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, invalidArgument("consume %s/%s: nil handler", stream, consumer)
	}
	s, err := c.jsSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	cs := &Consumption{c: c, stream: stream, consumer: consumer, handler: handler, done: make(chan struct{})}
	cc, err := cs.start(ctx, s)
	if err != nil {
		return nil, err
	}
	// Subscribe to state changes before anything can change: an event
	// arriving later only makes run look at the generation again.
	life, cancel := context.WithCancel(ctx)
	cs.cancel = cancel
	events := c.StateChanges(life)
	go cs.run(life, events, s.gen, cc)
	return cs, nil
}

// Stop stops consuming and returns once the handler has returned and every
// goroutine Consume started has ended. Stop is idempotent.
func (cs *Consumption) Stop() {
	cs.stopOnce.Do(cs.cancel)
	<-cs.done
}

// Done is closed when consuming has stopped, through Stop, ctx or Close.
func (cs *Consumption) Done() <-chan struct{} { return cs.done }

// start binds or creates the consumer on the connection of snapshot s and
// starts consuming it.
func (cs *Consumption) start(ctx context.Context, s *snapshot) (jetstream.ConsumeContext, error) {
	ctx, cancel := cs.c.bounded(ctx)
	defer cancel()
	cons, err := s.js.Consumer(ctx, cs.stream, cs.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = s.js.CreateConsumer(ctx, cs.stream, jetstream.ConsumerConfig{
			Durable:   cs.consumer,
			AckPolicy: jetstream.AckExplicitPolicy,
		})
	}
	if err != nil {
		cs.c.report(s, err)
		return nil, fmt.Errorf("natsclient: consume %s/%s: %w", cs.stream, cs.consumer, err)
	}
	cc, err := cons.Consume(cs.deliver, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		cs.c.opts.logf("consume %s/%s: %v", cs.stream, cs.consumer, err)
	}))
	if err != nil {
		cs.c.report(s, err)
		return nil, fmt.Errorf("natsclient: consume %s/%s: %w", cs.stream, cs.consumer, err)
	}
	return cc, nil
}

// deliver runs the handler and acknowledges what it accepted.
func (cs *Consumption) deliver(msg jetstream.Msg) {
	if err := cs.handler(msg); err != nil {
		if nerr := msg.Nak(); nerr != nil && !errors.Is(nerr, jetstream.ErrMsgAlreadyAckd) {
			cs.c.opts.logf("consume %s/%s: nak: %v", cs.stream, cs.consumer, nerr)
		}
		return
	}
	if aerr := msg.Ack(); aerr != nil && !errors.Is(aerr, jetstream.ErrMsgAlreadyAckd) {
		cs.c.opts.logf("consume %s/%s: ack: %v", cs.stream, cs.consumer, aerr)
	}
}

// recheckDelay is how soon run looks at the snapshot again after a state
// change event.
const recheckDelay = 20 * time.Millisecond

// run follows the client from connection to connection: when a state change
// shows a new connection generation, it stops consuming on the old one and
// starts on the new one, retrying with backoff until that works.
func (cs *Consumption) run(ctx context.Context, events <-chan StateChange, gen uint64, cc jetstream.ConsumeContext) {
	defer close(cs.done)
	stopCC := func() {
		if cc != nil {
			cc.Stop()
			<-cc.Closed()
			cc = nil
		}
	}
	defer stopCC()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return // the client closed
			}
			// The supervisor emits an event before it publishes the
			// snapshot that goes with it: look again shortly.
			retry.Reset(recheckDelay)
		case <-retry.C:
		}
		s, err := cs.c.jsSnapshot(ctx)
		if err != nil || (s.gen == gen && cc != nil) {
			continue // not connected yet, or nothing changed
		}
		stopCC()
		if cc, err = cs.start(ctx, s); err != nil {
			failures++
			cs.c.opts.logf("consume %s/%s on the new connection: %v; retrying", cs.stream, cs.consumer, err)
			retry.Reset(backoff(cs.c.opts.reconnectWait, failures))
			continue
		}
		gen, failures = s.gen, 0
	}
}
