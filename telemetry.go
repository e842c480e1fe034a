package natsclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry: the client speaks the OpenTelemetry API only; the application
// picks the SDK and exporters and hands in its providers. With none given
// the client holds no telemetry at all (Client.tel is nil) and the hot path
// pays one pointer test, so that a client without telemetry costs what it
// did before there was any.

// instrumentationName names the tracer and meter the client creates.
const instrumentationName = "github.com/c360/natsclient"

// WithTracerProvider makes the client record spans with tp: a producer span
// "send <subject>" for Publish, PublishMsg, Request, RequestMsg,
// PublishToStream and PublishMsgToStream, whose context is injected into the
// message headers; a consumer span around each handler call, a child of the
// sender's span: "process <subject>" for a subscription (its subject as
// subscribed, wildcards and all), "process <stream> <consumer>" for a
// Consume (the message's subject is an attribute); and
// "kv <op>" spans for KV writes. A nil provider is an error.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) error {
		if tp == nil {
			return invalidOption("WithTracerProvider", "nil trace.TracerProvider")
		}
		o.tracerProvider = tp
		return nil
	}
}

// WithMeterProvider makes the client record metrics with mp (the package
// documentation's "Observability" lists them). Instruments are created once, by NewClient. A nil
// provider is an error.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) error {
		if mp == nil {
			return invalidOption("WithMeterProvider", "nil metric.MeterProvider")
		}
		o.meterProvider = mp
		return nil
	}
}

// WithPropagator sets how trace context travels in message headers (default:
// W3C TraceContext and Baggage). Given alone, without WithTracerProvider, it
// makes the client carry the caller's trace context along without recording
// spans of its own. A nil propagator is an error.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) error {
		if p == nil {
			return invalidOption("WithPropagator", "nil propagation.TextMapPropagator")
		}
		o.propagator = p
		return nil
	}
}

// WithKVKeysInSpans records the key as an attribute of KV write spans. Keys
// are left out by default: they often name users or devices.
func WithKVKeysInSpans() Option {
	return func(o *options) error {
		o.kvKeysInSpans = true
		return nil
	}
}

// telemetry is what the client records with. It exists only when a
// provider or propagator was configured.
type telemetry struct {
	tracer trace.Tracer // nil: no spans
	// prop is nil when nothing is to be injected: metrics alone do not
	// change what goes on the wire.
	prop       propagation.TextMapPropagator
	metrics    *instruments // nil: no metrics
	kvKeys     bool
	registered metric.Registration
}

func newTelemetry(c *Client, o *options) (*telemetry, error) {
	if o.tracerProvider == nil && o.meterProvider == nil && o.propagator == nil {
		return nil, nil
	}
	t := &telemetry{kvKeys: o.kvKeysInSpans, prop: o.propagator}
	if o.tracerProvider != nil {
		t.tracer = o.tracerProvider.Tracer(instrumentationName)
		if t.prop == nil {
			t.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	}
	if o.meterProvider != nil {
		m, reg, err := newInstruments(o.meterProvider.Meter(instrumentationName), c)
		if err != nil {
			return nil, fmt.Errorf("natsclient: metrics: %w", err)
		}
		t.metrics, t.registered = m, reg
	}
	return t, nil
}

// stop unregisters the observed metrics of a closed client, so that a meter
// provider outliving it does not keep it reachable.
func (t *telemetry) stop() {
	if t != nil && t.registered != nil {
		_ = t.registered.Unregister()
	}
}

// Operation types and names, as the messaging semantic conventions spell them.
const (
	opSend    = "send"
	opProcess = "process"
)

// operation is one traced and measured call: its span (nil without a
// tracer) and its start (zero without metrics).
type operation struct {
	ctx   context.Context
	span  trace.Span
	start time.Time
	kind  string // opSend or opProcess
}

// begin starts an operation on subject. timed asks for its duration: a
// call that waits for an answer, or a handler. A publish only hands the
// message to the connection's buffer; timing that would cost more than it
// tells.
//
// Attributes are set only on a span that records: a sampler that drops the
// span should not pay for them.
func (t *telemetry) begin(ctx context.Context, kind, name, subject string, size int, spanKind trace.SpanKind, timed bool, extra ...attribute.KeyValue) operation {
	op := operation{ctx: ctx, kind: kind}
	if t.tracer != nil {
		op.ctx, op.span = t.tracer.Start(ctx, name, trace.WithSpanKind(spanKind))
		if op.span.IsRecording() {
			op.span.SetAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.destination.name", subject),
				attribute.String("messaging.operation.type", kind),
				attribute.String("messaging.operation.name", kind),
				attribute.Int("messaging.message.body.size", size))
			op.span.SetAttributes(extra...)
		}
	}
	if t.metrics != nil && timed {
		op.start = time.Now()
	}
	return op
}

// end records the operation's outcome: the span's status and error.type,
// its duration and its message count.
func (t *telemetry) end(op operation, err error) {
	if op.span != nil {
		if err != nil && op.span.IsRecording() {
			op.span.SetAttributes(attribute.String("error.type", errorType(err)))
			op.span.SetStatus(codes.Error, err.Error())
		}
		op.span.End()
	}
	if t.metrics != nil {
		t.metrics.record(op, err)
	}
}

// inject writes the trace context of ctx into msg's headers. The carrier
// creates headers only if the propagator has something to write, so a
// message sent without a trace goes out as it would without telemetry.
func (t *telemetry) inject(ctx context.Context, msg *nats.Msg) {
	if t.prop != nil {
		t.prop.Inject(ctx, &lazyHeader{msg: msg})
	}
}

// extract returns ctx with the trace context carried by msg's headers.
func (t *telemetry) extract(ctx context.Context, h nats.Header) context.Context {
	if t.prop == nil || len(h) == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, headerCarrier(h))
}

// headerCarrier lets a propagator read and write NATS headers. nats.Header
// has http.Header's shape but not its canonical keys: the W3C keys are
// written as the propagator spells them, lower case.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// lazyHeader is a carrier that creates msg's headers on the first Set.
type lazyHeader struct{ msg *nats.Msg }

func (l *lazyHeader) Get(key string) string {
	return headerCarrier(l.msg.Header).Get(key)
}

func (l *lazyHeader) Set(key, value string) {
	if l.msg.Header == nil {
		l.msg.Header = nats.Header{}
	}
	l.msg.Header[key] = []string{value}
}

func (l *lazyHeader) Keys() []string { return headerCarrier(l.msg.Header).Keys() }

// errorTypes are the values of the error.type attribute: what kind of
// failure, in a few values a dashboard can group by, never the message
// (which may hold a subject or key). The first, "", is success.
var errorTypes = [...]string{"", "circuit_open", "closed", "not_connected", "unknown_outcome",
	"no_responders", "timeout", "canceled", "max_payload", "conflict", "_OTHER"}

// errorKind is err's index in errorTypes.
func errorKind(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrCircuitOpen):
		return 1
	case errors.Is(err, ErrClosed):
		return 2
	case errors.Is(err, ErrNotConnected):
		return 3
	case errors.Is(err, ErrKVUnknownOutcome):
		return 4
	case errors.Is(err, nats.ErrNoResponders):
		return 5
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return 6
	case errors.Is(err, context.Canceled):
		return 7
	case errors.Is(err, nats.ErrMaxPayload):
		return 8
	case IsKVConflictError(err):
		return 9
	}
	return len(errorTypes) - 1
}

func errorType(err error) string { return errorTypes[errorKind(err)] }
