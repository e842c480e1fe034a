package bench

import (
	"context"
	"testing"

	"github.com/c360/natsclient"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// telemetrySetups are the client configurations BenchmarkTelemetry compares
// with raw nats.go. The client without any provider is BenchmarkCore's.
var telemetrySetups = []struct {
	name    string
	options func(testing.TB) []natsclient.Option
}{
	{"NeverSample", func(tb testing.TB) []natsclient.Option {
		return []natsclient.Option{natsclient.WithTracerProvider(tracerProvider(tb, sdktrace.NeverSample()))}
	}},
	{"AlwaysSample", func(tb testing.TB) []natsclient.Option {
		return []natsclient.Option{natsclient.WithTracerProvider(tracerProvider(tb, sdktrace.AlwaysSample()))}
	}},
	{"Metrics", func(tb testing.TB) []natsclient.Option {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		tb.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		return []natsclient.Option{natsclient.WithMeterProvider(mp)}
	}},
}

// tracerProvider is an SDK provider whose spans, once sampled and ended, are
// dropped: what is measured is the client's work and the SDK's, not an
// exporter's.
func tracerProvider(tb testing.TB, s sdktrace.Sampler) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithSpanProcessor(discardSpans{}))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

type discardSpans struct{}

func (discardSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discardSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discardSpans) Shutdown(context.Context) error                  { return nil }
func (discardSpans) ForceFlush(context.Context) error                { return nil }

// BenchmarkTelemetry measures Publish of 16 bytes with a tracer that samples
// nothing, one that samples everything, and metrics on, each against raw
// nats.go in the same run.
func BenchmarkTelemetry(b *testing.B) {
	for _, setup := range telemetrySetups {
		b.Run("Publish16B/"+setup.name, func(b *testing.B) {
			srv := newServer(b, false)
			nc := dialRaw(b, srv.URL())
			c := dialClient(b, srv.URL(), setup.options(b)...)
			data := make([]byte, 16)
			ctx := context.Background()
			const subject = "bench.publish"
			runPair(b,
				loop(func() error { return nc.Publish(subject, data) }, nc.Flush),
				loop(func() error { return c.Publish(ctx, subject, data) }, func() error { return c.Flush(ctx) }))
		})
	}
}
