package bench

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats.go"
)

// clientFirst runs the client side of each pair before the raw side, and
// repeats runs each pair that many times, alternating the order (raw, client,
// client, raw, ...). The benchratio driver sets both: it flips clientFirst
// every round, so that neither side always runs on a warmer, or a more
// crowded, machine, and pairs each repetition with its neighbour.
var (
	clientFirst = flag.Bool("clientfirst", false, "run the client side of each pair first")
	repeats     = flag.Int("repeats", 1, "run each pair this many times, alternating the order")
)

// Settings both sides share, so that neither is measured with a different
// configuration. nats.go's default ReconnectJitter (100ms) is set to zero on
// the raw side; the client's connections use its own reconnect delay, which
// has no jitter while the breaker is closed.
const (
	reconnectWait = 20 * time.Millisecond
	callTimeout   = 5 * time.Second
	pingInterval  = natsclient.DefaultPingInterval
)

// rig is one embedded server with a raw nats.go connection and a connected
// natsclient.Client on the same URL.
type rig struct {
	srv    *benchServer
	url    string
	nc     *nats.Conn
	client *natsclient.Client
}

func newRig(tb testing.TB, jetStream bool) *rig {
	tb.Helper()
	srv := newServer(tb, jetStream)
	r := &rig{srv: srv, url: srv.URL()}
	r.nc = dialRaw(tb, r.url)
	r.client = dialClient(tb, r.url)
	return r
}

// rawOptions are the raw side's options: the same reconnect wait, timeout and
// ping interval as the client's, no reconnect jitter, unlimited reconnects.
func rawOptions(extra ...nats.Option) []nats.Option {
	return append([]nats.Option{
		nats.Name("bench-raw"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(0, 0),
		nats.Timeout(callTimeout),
		nats.PingInterval(pingInterval),
	}, extra...)
}

// clientOptions are the client's equivalent of rawOptions.
func clientOptions(extra ...natsclient.Option) []natsclient.Option {
	return append([]natsclient.Option{
		natsclient.WithName("bench-client"),
		natsclient.WithMaxReconnects(-1),
		natsclient.WithReconnectWait(reconnectWait),
		natsclient.WithTimeout(callTimeout),
		natsclient.WithPingInterval(pingInterval),
	}, extra...)
}

// dialRaw connects nats.go to url and closes the connection when the test or
// benchmark ends.
func dialRaw(tb testing.TB, url string, extra ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, rawOptions(extra...)...)
	if err != nil {
		tb.Fatalf("raw connect to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// dialClient connects a natsclient.Client to url and closes it when the test
// or benchmark ends.
func dialClient(tb testing.TB, url string, extra ...natsclient.Option) *natsclient.Client {
	tb.Helper()
	c, err := natsclient.NewClient(url, clientOptions(extra...)...)
	if err != nil {
		tb.Fatalf("new client: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			tb.Errorf("close client: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		tb.Fatalf("client connect to %s: %v", url, err)
	}
	return c
}

// op is one call of a pair's side. Both sides are called through the same
// kind of func value, so the indirect call (about 1–2 ns) is the same on both
// and only narrows a ratio, never widens it.
type op func() error

// runPair runs the raw and the client side as sub-benchmarks "raw" and
// "client", one right after the other, in the order -clientfirst says, and
// -repeats times, alternating the order. Repetitions are named raw#01,
// client#01 and so on by the testing package.
func runPair(b *testing.B, raw, client func(*testing.B)) {
	b.Helper()
	first, second := "raw", "client"
	fns := map[string]func(*testing.B){"raw": raw, "client": client}
	if *clientFirst {
		first, second = second, first
	}
	for range max(*repeats, 1) {
		b.Run(first, fns[first])
		b.Run(second, fns[second])
		first, second = second, first
	}
}

// loop calls o b.N times on one goroutine, then settle, if any, before the
// timer stops.
//
// settle is a flush for the publish pairs: the embedded server runs in this
// process, and it allocates once for each message published to a subject
// nobody listens on (a string of the subject, in processInboundClientMsg).
// Waiting until it has read every message counts that allocation for every
// op, on both sides alike, instead of for however many it happened to reach
// before the timer stopped.
func loop(o, settle op) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU(b)
		for range b.N {
			if err := o(); err != nil {
				b.Fatal(err)
			}
		}
		if settle != nil {
			if err := settle(); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	}
}

// parallel is loop across GOMAXPROCS goroutines.
func parallel(o, settle op) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := o(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if settle != nil {
			if err := settle(); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	}
}

// cpuClock measures the process's CPU time per op over a benchmark run,
// reported as cpu-ns/op next to testing's wall-time ns/op.
type cpuClock struct {
	start time.Duration
	ok    bool
}

// startCPU resets the benchmark timer and starts the CPU clock with it.
func startCPU(b *testing.B) cpuClock {
	b.ResetTimer()
	start, ok := processCPU()
	return cpuClock{start: start, ok: ok}
}

func (c cpuClock) report(b *testing.B) {
	b.StopTimer()
	if end, ok := processCPU(); ok && c.ok {
		b.ReportMetric(float64(end-c.start)/float64(b.N), "cpu-ns/op")
	}
}

// waitTimeout bounds every wait for an event.
const waitTimeout = 20 * time.Second

// rawCallbacks report, with the time they ran, nats.go's disconnect and
// reconnect callbacks on down and up. They never block nats.go.
func rawCallbacks(down, up chan<- time.Time) []nats.Option {
	send := func(ch chan<- time.Time) {
		select {
		case ch <- time.Now():
		default:
		}
	}
	return []nats.Option{
		nats.DisconnectErrHandler(func(*nats.Conn, error) { send(down) }),
		nats.ReconnectHandler(func(*nats.Conn) { send(up) }),
	}
}

// meter is what a measurement needs from whatever runs it: a benchmark, or a
// sanity test that runs it once and checks what it reports.
type meter struct {
	testing.TB
	n       int        // iterations
	b       *testing.B // nil in a test
	metrics map[string]float64
}

func benchMeter(b *testing.B) *meter {
	return &meter{TB: b, n: b.N, b: b, metrics: map[string]float64{}}
}

func testMeter(t *testing.T, n int) *meter {
	return &meter{TB: t, n: n, metrics: map[string]float64{}}
}

// start and stop bracket the measured part, as ResetTimer and StopTimer.
func (m *meter) start() {
	if m.b != nil {
		m.b.ResetTimer()
	}
}

func (m *meter) stop() {
	if m.b != nil {
		m.b.StopTimer()
	}
}

// report records a metric and, in a benchmark, reports it.
func (m *meter) report(v float64, unit string) {
	m.metrics[unit] = v
	if m.b != nil {
		m.b.ReportMetric(v, unit)
	}
}
