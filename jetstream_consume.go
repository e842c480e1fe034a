package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/c360/natsclient/internal/errs"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumption is a running Consume: messages of a durable consumer delivered
// to a handler, on whichever connection the client has. Stop ends it.
type Consumption struct {
	follower[struct{}]
	stream, consumer string
	handler          func(context.Context, jetstream.Msg) error
	// span is the name of a delivery's span: "process <stream> <consumer>",
	// made once (tracing.go).
	span string
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
// nothing acked is delivered again and nothing unacked is lost. Through a
// Domain it resumes also when the domain's link returns while the client's
// connection stayed up (a leaf node's link to its hub, which took the
// consumer's pull request with it): while a Consume or watcher runs in a
// named domain, the client asks the domain's JetStream every 500 ms whether
// it answers, and starts again at once when it answers after it did not.
// Errors setting it up on the current connection are returned; later ones
// are retried with backoff and logged.
func (c *Client) Consume(ctx context.Context, stream, consumer string, handler func(jetstream.Msg) error) (*Consumption, error) {
	if handler == nil {
		return nil, errs.InvalidArgument("consume %s/%s: nil handler", stream, consumer)
	}
	return c.ConsumeFunc(ctx, stream, consumer, func(_ context.Context, msg jetstream.Msg) error { return handler(msg) })
}

// ConsumeFunc is Consume with a handler that receives the message's trace
// context: with a tracer provider configured, ctx holds the consumer span
// "process <stream> <consumer>", a child of the span the message was
// published in (PublishToStream injects it into the stored message's
// headers), which ends when the handler returns and is marked as an error
// when it returns one. The span is named by what is consumed, not by the
// message's subject, which may carry ids without bound; the subject is its
// messaging.destination.name attribute. Without telemetry ctx is
// context.Background().
func (c *Client) ConsumeFunc(ctx context.Context, stream, consumer string, handler func(context.Context, jetstream.Msg) error) (*Consumption, error) {
	if err := wire.ValidateStreamName("stream", stream); err != nil {
		return nil, err
	}
	if err := wire.ValidateStreamName("consumer", consumer); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errs.InvalidArgument("consume %s/%s: nil handler", stream, consumer)
	}
	cs := &Consumption{stream: stream, consumer: consumer, handler: handler, span: consumeSpanName(stream, consumer)}
	cs.follower = follower[struct{}]{c: c, what: fmt.Sprintf("consume %s/%s", stream, consumer), start: cs.start}
	if err := cs.follow(ctx); err != nil {
		return nil, err
	}
	return cs, nil
}

// Stop stops consuming and returns once the handler has returned and every
// goroutine Consume started has ended. Stop is idempotent.
func (cs *Consumption) Stop() { cs.stop() }

// Done is closed when consuming has stopped, through Stop, ctx or Close.
func (cs *Consumption) Done() <-chan struct{} { return cs.done }

// start binds or creates the consumer on the connection of snapshot s and
// starts consuming it.
func (cs *Consumption) start(ctx context.Context, s *snapshot) (session[struct{}], error) {
	sess := &consumeSession{cs: cs}
	cc, err := cs.consume(ctx, s, sess)
	if err != nil {
		return session[struct{}]{}, err
	}
	return session[struct{}]{stop: func() {
		cc.Stop()
		<-cc.Closed()
		cs.c.base().consumers.Delete(sess.goroutine.Load())
	}}, nil
}

// consumeSession is one ConsumeContext's deliveries. jetstream runs them all
// on the goroutine of the subscription behind it, which the first delivery
// records, once, in the client's consumers: a Close called from the handler
// must not wait for the drain of that subscription, which waits for the
// handler.
type consumeSession struct {
	cs        *Consumption
	goroutine atomic.Uint64 // 0 until the first delivery
}

func (sess *consumeSession) deliver(msg jetstream.Msg) {
	// Close waits for a handler that runs (activity.go).
	active := &sess.cs.c.base().active
	active.add()
	defer active.done()
	if sess.goroutine.Load() == 0 {
		id := goroutineID()
		sess.goroutine.Store(id)
		sess.cs.c.base().consumers.Store(id, struct{}{})
	}
	sess.cs.deliver(msg)
}

func (cs *Consumption) consume(ctx context.Context, s *snapshot, sess *consumeSession) (jetstream.ConsumeContext, error) {
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
	cc, err := cons.Consume(sess.deliver, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		cs.c.opts.log(slog.LevelWarn, "consumer error", slog.String("stream", cs.stream), slog.String("consumer", cs.consumer), errAttr(err))
	}))
	if err != nil {
		cs.c.report(s, err)
		return nil, fmt.Errorf("natsclient: consume %s/%s: %w", cs.stream, cs.consumer, err)
	}
	return cc, nil
}

// deliver runs the handler and acknowledges what it accepted.
func (cs *Consumption) deliver(msg jetstream.Msg) {
	var err error
	if t := cs.c.tel; t != nil {
		err = t.consumeObserved(cs, msg)
	} else {
		err = cs.handler(context.Background(), msg)
	}
	if err != nil {
		if nerr := msg.Nak(); nerr != nil && !errors.Is(nerr, jetstream.ErrMsgAlreadyAckd) {
			cs.c.opts.log(slog.LevelWarn, "consumer nak failed", slog.String("stream", cs.stream), slog.String("consumer", cs.consumer), errAttr(nerr))
		}
		return
	}
	if aerr := msg.Ack(); aerr != nil && !errors.Is(aerr, jetstream.ErrMsgAlreadyAckd) {
		cs.c.opts.log(slog.LevelWarn, "consumer ack failed", slog.String("stream", cs.stream), slog.String("consumer", cs.consumer), errAttr(aerr))
	}
}
