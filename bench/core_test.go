package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// pairSpec is one hot-path comparison: ops builds the raw and the client side
// of the same call on a rig. The sanity test runs each side once and checks
// what arrives on subject.
type pairSpec struct {
	name     string // sub-benchmark path under BenchmarkCore
	subject  string
	size     int  // payload bytes
	headers  bool // messages carry benchHeaders
	parallel bool // run with b.RunParallel
	// block is the ops per block of an interleaved run (see interleaved);
	// 0 for the publishes, which it does not suit: a block of publishes
	// leaves the server a backlog that it reads during the other side's
	// block, and the same code measured 0.59 to 1.67 that way.
	block int
	ops   func(tb testing.TB, r *rig, s pairSpec) (raw, client op)
}

// benchHeaders are the two headers of the PublishMsg pair.
var benchHeaders = nats.Header{"Trace-Id": {"4bf92f3577b34da6"}, "Content-Type": {"application/json"}}

var corePairs = []pairSpec{
	{name: "Publish/16B", subject: "bench.publish", size: 16, ops: publishOps},
	{name: "Publish/1KiB", subject: "bench.publish", size: 1024, ops: publishOps},
	{name: "PublishParallel/16B", subject: "bench.publish", size: 16, parallel: true, ops: publishOps},
	{name: "PublishParallel/1KiB", subject: "bench.publish", size: 1024, parallel: true, ops: publishOps},
	{name: "PublishMsg/2headers", subject: "bench.publish", size: 16, headers: true, ops: publishMsgOps},
	{name: "Request/16B", subject: "bench.request", size: 16, block: 4, ops: requestOps},
	{name: "RequestCtx/16B", subject: "bench.request", size: 16, block: 4, ops: requestCtxOps},
}

// BenchmarkCore runs every hot-path pair: client/raw ns/op and allocations.
// Publishes have no subscriber; requests have a responder on a third
// connection that echoes the payload.
func BenchmarkCore(b *testing.B) {
	for _, p := range corePairs {
		b.Run(p.name, func(b *testing.B) {
			r := newRig(b, false)
			raw, client := p.ops(b, r, p)
			rawFlush := r.nc.Flush
			clientFlush := func() error { return r.client.Flush(context.Background()) }
			if p.parallel {
				runPair(b, parallel(raw, rawFlush), parallel(client, clientFlush))
			} else {
				runPair(b, loop(raw, rawFlush), loop(client, clientFlush))
			}
			if p.block > 0 {
				for range max(*repeats, 1) {
					b.Run("interleaved", interleaved(raw, client, p.block))
				}
			}
		})
	}
}

func publishOps(_ testing.TB, r *rig, s pairSpec) (op, op) {
	data := make([]byte, s.size)
	ctx := context.Background()
	return func() error { return r.nc.Publish(s.subject, data) },
		func() error { return r.client.Publish(ctx, s.subject, data) }
}

func publishMsgOps(_ testing.TB, r *rig, s pairSpec) (op, op) {
	msg := &nats.Msg{Subject: s.subject, Data: make([]byte, s.size), Header: benchHeaders}
	ctx := context.Background()
	return func() error { return r.nc.PublishMsg(msg) },
		func() error { return r.client.PublishMsg(ctx, msg) }
}

// startResponder answers every request on subject with its own payload, from
// a connection of its own.
func startResponder(tb testing.TB, url, subject string) {
	tb.Helper()
	nc := dialRaw(tb, url)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		tb.Fatalf("responder: %v", err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatalf("responder flush: %v", err)
	}
}

// echoed checks a reply, so that a pair cannot pass by failing quickly.
func echoed(m *nats.Msg, err error, size int) error {
	if err != nil {
		return err
	}
	if len(m.Data) != size {
		return fmt.Errorf("reply of %d bytes, want %d", len(m.Data), size)
	}
	return nil
}

// requestOps compares nats.go's Request with a timeout against the client's
// Request with a context that has no deadline, which the client bounds by
// the same timeout.
func requestOps(tb testing.TB, r *rig, s pairSpec) (op, op) {
	startResponder(tb, r.url, s.subject)
	data := make([]byte, s.size)
	ctx := context.Background()
	return func() error { m, err := r.nc.Request(s.subject, data, callTimeout); return echoed(m, err, s.size) },
		func() error { m, err := r.client.Request(ctx, s.subject, data); return echoed(m, err, s.size) }
}

// requestCtxOps compares RequestWithContext against the client's Request,
// both with a context that has a deadline.
func requestCtxOps(tb testing.TB, r *rig, s pairSpec) (op, op) {
	startResponder(tb, r.url, s.subject)
	data := make([]byte, s.size)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	tb.Cleanup(cancel)
	return func() error { m, err := r.nc.RequestWithContext(ctx, s.subject, data); return echoed(m, err, s.size) },
		func() error { m, err := r.client.Request(ctx, s.subject, data); return echoed(m, err, s.size) }
}

// openBreaker returns a client whose breaker is open against a real server
// that has been stopped: threshold 1, and an open interval of about a minute
// so that it stays open while the benchmark runs.
func openBreaker(tb testing.TB) *natsclient.Client {
	tb.Helper()
	srv := newServer(tb, false)
	c := dialClient(tb, srv.URL(),
		natsclient.WithCircuitBreakerThreshold(1),
		natsclient.WithReconnectWait(time.Minute),
		natsclient.WithMaxBackoff(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	events := c.StateChanges(ctx)
	srv.Stop()
	natstest.Await(tb, events, waitTimeout, "breaker-open event", func(ev natsclient.StateChange) bool {
		return ev.Breaker == natsclient.BreakerOpen
	})
	return c
}

// breakerOpenOps are calls that must fail at once with ErrCircuitOpen. The
// client returns the error its snapshot holds, built once when the breaker
// opened; each op compares the pointer with that error and calls errors.Is
// only when it differs (a snapshot republished meanwhile), so the check adds
// a compare, not errors.Is's ~10-20 ns, to what is measured.
func breakerOpenOps(tb testing.TB, c *natsclient.Client) map[string]op {
	ctx := context.Background()
	data := make([]byte, 16)
	refused := c.Publish(ctx, "bench.open", data)
	if !errors.Is(refused, natsclient.ErrCircuitOpen) {
		tb.Fatalf("Publish with the breaker open = %v, want ErrCircuitOpen", refused)
	}
	must := func(err error) error {
		if err != refused && !errors.Is(err, natsclient.ErrCircuitOpen) {
			return fmt.Errorf("want ErrCircuitOpen, got %v", err)
		}
		return nil
	}
	return map[string]op{
		"Publish": func() error { return must(c.Publish(ctx, "bench.open", data)) },
		"Request": func() error { _, err := c.Request(ctx, "bench.open", data); return must(err) },
	}
}

// BenchmarkBreakerOpen measures a call refused by the open breaker. Target:
// at most 100 ns/op and no allocation.
func BenchmarkBreakerOpen(b *testing.B) {
	c := openBreaker(b)
	ops := breakerOpenOps(b, c)
	for _, name := range []string{"Publish", "Request"} {
		b.Run(name+"/client", loop(ops[name], nil))
	}
}
