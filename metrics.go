package natsclient

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instruments are the client's metrics, created once by NewClient. Subjects
// are not an attribute: they often carry identifiers, and one time series
// per subject would swamp a metrics backend.
//
// Message counts are atomic counters, one per error.type, that the SDK
// reads when it collects: counting a publish costs an atomic add, not an
// SDK measurement.
type instruments struct {
	opDuration      metric.Float64Histogram
	processDuration metric.Float64Histogram
	casConflicts    metric.Int64Counter
	unknownOutcomes metric.Int64Counter

	sent, consumed [len(errorTypes)]atomic.Int64
	// The attributes of each operation kind and error.type, built once.
	sendAttrs, processAttrs [len(errorTypes)]attribute.Set
}

func newInstruments(m metric.Meter, c *Client) (*instruments, metric.Registration, error) {
	var (
		in   instruments
		errs [12]error
	)
	for k, e := range errorTypes {
		in.sendAttrs[k] = operationAttrs(opSend, e)
		in.processAttrs[k] = operationAttrs(opProcess, e)
	}
	in.opDuration, errs[0] = m.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a send: until the message was handed to the connection, or answered for requests and stream publishes."))
	in.processDuration, errs[1] = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a handler call for one message."))
	var sent, consumed metric.Int64ObservableCounter
	sent, errs[2] = m.Int64ObservableCounter("messaging.client.sent.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages the client attempted to send."))
	consumed, errs[3] = m.Int64ObservableCounter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered to a handler."))
	in.casConflicts, errs[4] = m.Int64Counter("natsclient.kv.cas.conflicts", metric.WithUnit("{conflict}"),
		metric.WithDescription("KV compare-and-swap writes refused because the key had moved on."))
	in.unknownOutcomes, errs[5] = m.Int64Counter("natsclient.kv.unknown_outcomes", metric.WithUnit("{write}"),
		metric.WithDescription("KV writes whose outcome could not be known (ErrKVUnknownOutcome)."))

	var (
		breakerState, connState       metric.Int64ObservableGauge
		rejections, trips, reconnects metric.Int64ObservableCounter
	)
	breakerState, errs[6] = m.Int64ObservableGauge("natsclient.breaker.state",
		metric.WithDescription("Circuit breaker state: 0 closed, 1 open, 2 half-open."))
	connState, errs[7] = m.Int64ObservableGauge("natsclient.connection.state",
		metric.WithDescription("Connection state: 0 disconnected, 1 connecting, 2 connected, 3 reconnecting, 4 closed."))
	rejections, errs[8] = m.Int64ObservableCounter("natsclient.breaker.rejections", metric.WithUnit("{call}"),
		metric.WithDescription("Calls failed fast because the breaker was open."))
	trips, errs[9] = m.Int64ObservableCounter("natsclient.breaker.trips", metric.WithUnit("{trip}"),
		metric.WithDescription("Times the breaker opened."))
	reconnects, errs[10] = m.Int64ObservableCounter("natsclient.reconnects", metric.WithUnit("{reconnect}"),
		metric.WithDescription("Recoveries after a lost connection."))
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := c.Stats()
		o.ObserveInt64(breakerState, int64(st.Breaker))
		o.ObserveInt64(connState, int64(st.State))
		o.ObserveInt64(rejections, int64(st.BreakerRejections))
		o.ObserveInt64(trips, int64(st.BreakerTrips))
		o.ObserveInt64(reconnects, int64(st.Reconnects))
		for k := range errorTypes {
			if n := in.sent[k].Load(); n > 0 {
				o.ObserveInt64(sent, n, metric.WithAttributeSet(in.sendAttrs[k]))
			}
			if n := in.consumed[k].Load(); n > 0 {
				o.ObserveInt64(consumed, n, metric.WithAttributeSet(in.processAttrs[k]))
			}
		}
		return nil
	}, breakerState, connState, rejections, trips, reconnects, sent, consumed)
	if err != nil {
		return nil, nil, err
	}
	return &in, reg, nil
}

func operationAttrs(kind, errorType string) attribute.Set {
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", kind),
		attribute.String("messaging.operation.name", kind),
	}
	if errorType != "" {
		attrs = append(attrs, attribute.String("error.type", errorType))
	}
	return attribute.NewSet(attrs...)
}

func metricBucket(bucket string) metric.AddOption {
	return metric.WithAttributes(attribute.String("bucket", bucket))
}

// countSent counts a send that had neither span nor duration. It is nil-safe:
// a client with a propagator alone has no instruments.
func (m *instruments) countSent(err error) {
	if m != nil {
		m.sent[errorKind(err)].Add(1)
	}
}

// record measures a finished operation.
func (m *instruments) record(op operation, err error) {
	k := errorKind(err)
	if op.kind == opProcess {
		m.consumed[k].Add(1)
		m.processDuration.Record(op.ctx, time.Since(op.start).Seconds(), metric.WithAttributeSet(m.processAttrs[k]))
		return
	}
	m.sent[k].Add(1)
	if !op.start.IsZero() {
		m.opDuration.Record(op.ctx, time.Since(op.start).Seconds(), metric.WithAttributeSet(m.sendAttrs[k]))
	}
}
