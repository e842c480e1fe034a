package outbox_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// gauges collects the outbox's gauges from reader.
func gauges(t *testing.T, reader *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				got[m.Name] = float64(d.DataPoints[0].Value)
			case metricdata.Gauge[float64]:
				got[m.Name] = d.DataPoints[0].Value
			}
		}
	}
	return got
}

func TestRegisterMetricsReportsTheBacklog(t *testing.T) {
	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, outboxPath(t))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	reg, err := ob.RegisterMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Unregister() }()

	tc.Server.Stop() // nothing can be forwarded: the messages stay pending
	publishN(t, ob, subjectPfx+"metrics", "m", 3)
	g := gauges(t, reader)
	if g["natsclient.outbox.pending.messages"] != 3 || g["natsclient.outbox.pending.bytes"] <= 0 ||
		g["natsclient.outbox.oldest.age"] <= 0 {
		t.Fatalf("gauges with 3 pending: %v (stats %+v)", g, ob.Stats())
	}

	tc.Server.Start()
	flush(t, ob)
	g = gauges(t, reader)
	if g["natsclient.outbox.pending.messages"] != 0 || g["natsclient.outbox.pending.bytes"] != 0 || g["natsclient.outbox.oldest.age"] != 0 {
		t.Fatalf("gauges after the backlog was forwarded: %v", g)
	}
	if _, err := ob.RegisterMetrics(nil); err == nil {
		t.Fatal("RegisterMetrics(nil) succeeded")
	}
}
