package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/c360/natsclient"
	"go.opentelemetry.io/otel/metric"
)

// RegisterMetrics reports the outbox's backlog through mp as three gauges,
// read from Stats when the meter provider collects:
// natsclient.outbox.pending.messages, natsclient.outbox.pending.bytes and
// natsclient.outbox.oldest.age (seconds since the oldest pending message
// was published; 0 when nothing is pending). Unregister the returned
// registration before dropping the outbox, or keep it for the process's
// life. It lives here, not in the client, so that the client package does
// not depend on the outbox.
func (ob *Outbox) RegisterMetrics(mp metric.MeterProvider) (metric.Registration, error) {
	if mp == nil {
		return nil, fmt.Errorf("%w: outbox.RegisterMetrics: nil metric.MeterProvider", natsclient.ErrInvalidArgument)
	}
	m := mp.Meter("github.com/c360/natsclient/outbox")
	pending, err := m.Int64ObservableGauge("natsclient.outbox.pending.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages in the outbox waiting for their stream's acknowledgement."))
	if err != nil {
		return nil, err
	}
	bytes, err := m.Int64ObservableGauge("natsclient.outbox.pending.bytes", metric.WithUnit("By"),
		metric.WithDescription("Stored size of the pending messages."))
	if err != nil {
		return nil, err
	}
	age, err := m.Float64ObservableGauge("natsclient.outbox.oldest.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest pending message; 0 when none is pending."))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := ob.Stats()
		o.ObserveInt64(pending, int64(st.Pending))
		o.ObserveInt64(bytes, st.PendingBytes)
		oldest := 0.0
		if !st.Oldest.IsZero() {
			oldest = time.Since(st.Oldest).Seconds()
		}
		o.ObserveFloat64(age, oldest)
		return nil
	}, pending, bytes, age)
}
