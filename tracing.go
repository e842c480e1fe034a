package natsclient

import (
	"context"
	"errors"
	"strings"

	"github.com/c360/natsclient/internal/errs"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The calls below are the hot path's observed twins: Publish, Request and a
// subscription's delivery take them only when c.tel is set, so that their
// cost stays out of a client without telemetry.

// publishObserved is Publish (msg nil) and PublishMsg with a producer
// span, the trace context injected into the message's headers, and the send
// counted. With metrics alone there is neither span nor header, and Publish
// sends as it would without telemetry.
func (c *Client) publishObserved(ctx context.Context, subject string, data []byte, msg *nats.Msg) error {
	t := c.tel
	if t.tracer == nil && t.prop == nil {
		err := c.publishOn(subject, data, msg)
		t.metrics.countSent(err)
		return err
	}
	if msg == nil {
		msg = &nats.Msg{Subject: subject, Data: data}
	}
	op := t.begin(ctx, opSend, sendSpanName(subject), subject, len(data), trace.SpanKindProducer, false)
	t.inject(op.ctx, msg)
	err := c.publishOn(subject, data, msg)
	t.end(op, err)
	return err
}

func (c *Client) publishOn(subject string, data []byte, msg *nats.Msg) error {
	s := c.snap.Load()
	if s.blocked != nil {
		return c.refused(s)
	}
	var err error
	if msg != nil {
		err = s.conn.PublishMsg(msg)
	} else {
		err = s.conn.Publish(subject, data)
	}
	if err != nil {
		return c.sendFailed(s, "publish", subject, data, msg, err)
	}
	return nil
}

// requestObserved is Request and RequestMsg, on snapshot s, with a producer
// span that lasts until the reply arrives.
func (c *Client) requestObserved(ctx context.Context, s *snapshot, msg *nats.Msg) (*nats.Msg, error) {
	t := c.tel
	op := t.begin(ctx, opSend, sendSpanName(msg.Subject), msg.Subject, len(msg.Data), trace.SpanKindProducer, true)
	t.inject(op.ctx, msg)
	var (
		reply *nats.Msg
		err   error
	)
	if s.blocked != nil {
		err = c.refused(s)
	} else {
		reply, err = c.roundTrip(ctx, s, msg.Subject, msg.Data, msg)
	}
	t.end(op, err)
	return reply, err
}

func sendSpanName(subject string) string { return "send " + subject }

// MsgFunc handles a message with a context that carries the sender's trace:
// with a tracer provider configured, ctx holds the consumer span "process
// <subject>", a child of the span the message was sent in, which ends when
// the handler returns. Spans the handler starts from ctx are its children,
// and a reply published with ctx continues the trace.
type MsgFunc func(ctx context.Context, msg *nats.Msg)

// SubscribeFunc is Subscribe with a handler that receives the message's
// trace context (see MsgFunc). Without telemetry configured ctx is
// context.Background().
func (c *Client) SubscribeFunc(subject string, handler MsgFunc) (*Subscription, error) {
	return c.QueueSubscribeFunc(subject, "", handler)
}

// QueueSubscribeFunc is QueueSubscribe with a MsgFunc handler; an empty
// queue makes a plain subscription, as SubscribeFunc does.
func (c *Client) QueueSubscribeFunc(subject, queue string, handler MsgFunc) (*Subscription, error) {
	if queue != "" {
		if err := wire.ValidateQueue(queue); err != nil {
			return nil, err
		}
	}
	if handler == nil {
		return nil, errs.InvalidArgument("nil message handler for subject %q", subject)
	}
	return c.subscribeWith(subject, queue, func(m *nats.Msg) { handler(context.Background(), m) }, handler)
}

// processAttrs are the span attributes of a subscription's deliveries that
// do not change from message to message.
func processAttrs(subject, queue string) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if strings.ContainsAny(subject, "*>") {
		attrs = append(attrs, attribute.String("messaging.destination.template", subject))
	}
	if queue != "" {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", queue))
	}
	return attrs
}

// deliverObserved runs a subscription's handler for m inside a consumer
// span whose parent is the sender's, and measures it.
func (t *telemetry) deliverObserved(s *Subscription, m *nats.Msg) {
	ctx := t.extract(context.Background(), m.Header)
	op := t.begin(ctx, opProcess, s.span, m.Subject, len(m.Data), trace.SpanKindConsumer, true, s.attrs...)
	if s.fn != nil {
		s.fn(op.ctx, m)
	} else {
		s.handler(m)
	}
	t.end(op, nil)
}

// consumeSpanName names a Consume delivery's span by the stream and the
// consumer, "process JOBS worker": OpenTelemetry's messaging conventions
// want a name of low cardinality, and subjects often carry device or order
// ids.
func consumeSpanName(stream, consumer string) string { return "process " + stream + " " + consumer }

// consumeObserved runs a Consume handler for msg inside a consumer span and
// measures it; the handler's error marks the span.
func (t *telemetry) consumeObserved(cs *Consumption, msg jetstream.Msg) error {
	ctx := t.extract(context.Background(), msg.Headers())
	op := t.begin(ctx, opProcess, cs.span, msg.Subject(), len(msg.Data()), trace.SpanKindConsumer, true,
		attribute.String("messaging.consumer.group.name", cs.consumer))
	err := cs.handler(op.ctx, msg)
	t.end(op, err)
	return err
}

// kvWrite is one KV write's span and measurements. A nil *kvWrite (no
// telemetry) does nothing.
type kvWrite struct {
	t      *telemetry
	op     operation
	bucket string
}

// kvWrite starts the span of a KV write: "kv <op>", with the bucket, and the
// key only when WithKVKeysInSpans asked for it.
func (t *telemetry) kvWrite(ctx context.Context, op, bucket, key string) *kvWrite {
	if t == nil {
		return nil
	}
	w := &kvWrite{t: t, bucket: bucket, op: operation{ctx: ctx}}
	if t.tracer != nil {
		attrs := []attribute.KeyValue{attribute.String("messaging.system", "nats"), attribute.String("bucket", bucket)}
		if t.kvKeys {
			attrs = append(attrs, attribute.String("key", key))
		}
		w.op.ctx, w.op.span = t.tracer.Start(ctx, "kv "+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	}
	return w
}

// conflict records a compare-and-swap conflict that the write retries.
func (w *kvWrite) conflict(attempt int) {
	if w == nil {
		return
	}
	if w.op.span != nil {
		w.op.span.AddEvent("cas conflict", trace.WithAttributes(attribute.Int("attempt", attempt)))
	}
	if m := w.t.metrics; m != nil {
		m.casConflicts.Add(w.op.ctx, 1, metricBucket(w.bucket))
	}
}

// end finishes the write with its result, passed through.
func (w *kvWrite) end(rev uint64, err error) (uint64, error) {
	if w == nil {
		return rev, err
	}
	if m := w.t.metrics; m != nil && err != nil {
		switch {
		case errors.Is(err, ErrKVUnknownOutcome):
			m.unknownOutcomes.Add(w.op.ctx, 1, metricBucket(w.bucket))
		case IsKVConflictError(err):
			m.casConflicts.Add(w.op.ctx, 1, metricBucket(w.bucket))
		}
	}
	if span := w.op.span; span != nil {
		if err == nil {
			span.SetAttributes(attribute.Int64("revision", int64(rev)))
		} else {
			span.SetAttributes(attribute.String("error.type", errorType(err)))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return rev, err
}
