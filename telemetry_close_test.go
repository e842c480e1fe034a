package natsclient_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
)

// observations counts the data points of the client's observed metrics
// (those its callback reports at each collection) in one Collect.
func observations(t *testing.T, reader *sdkmetric.ManualReader) int {
	t.Helper()
	observedNames := map[string]bool{
		"natsclient.breaker.state": true, "natsclient.connection.state": true,
		"natsclient.breaker.rejections": true, "natsclient.breaker.trips": true,
		"natsclient.reconnects": true, "messaging.client.sent.messages": true,
		"messaging.client.consumed.messages": true,
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !observedNames[m.Name] {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				n += len(d.DataPoints)
			case metricdata.Gauge[int64]:
				n += len(d.DataPoints)
			default:
				t.Fatalf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return n
}

// A Close called from a message handler unregisters the client's metrics
// callback too, once the client has finished: a meter provider that
// outlives the client no longer observes it (nor keeps it reachable).
// Before, only a Close from outside a handler unregistered it.
func TestCloseFromHandlerUnregistersMetrics(t *testing.T) {
	tc := natstest.NewTestClient(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	finished := make(chan struct{})
	c := newClient(t, tc.URL, fast(natsclient.WithMeterProvider(mp),
		natsclient.WithClosedCallback(func() { close(finished) }))...)
	ctx := natstest.Context(t, waitTimeout)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	if _, err := c.Subscribe("stop", func(*nats.Msg) { result <- c.Close(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	if n := observations(t, reader); n == 0 {
		t.Fatal("no observations from a connected client: the test cannot see an unregistration")
	}
	if err := c.Publish(ctx, "stop", nil); err != nil {
		t.Fatal(err)
	}
	if err := natstest.Receive(t, result, waitTimeout, "Close's return in the handler"); err != nil {
		t.Fatalf("Close from a handler = %v", err)
	}
	natstest.Receive(t, finished, waitTimeout, "the closed callback: the client has finished")
	if n := observations(t, reader); n != 0 {
		t.Fatalf("%d observations of a client closed from a handler: its metrics callback is still registered", n)
	}
}
