package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkFootprint measures what a connected client keeps beyond nats.go's
// own: idle goroutines (Goroutines, metric "goroutines") and memory per
// subscription (Subscription: live heap, metric "B/sub", and goroutines,
// metric "goroutines/sub": nats.go runs one for each subscription with a
// handler, whose stack is not heap).
// The embedded server's goroutines and memory for a connection are counted
// on both sides alike; the difference between the sides is the client's.
func BenchmarkFootprint(b *testing.B) {
	b.Run("Goroutines", func(b *testing.B) {
		srv := newServer(b, false)
		runPair(b, func(b *testing.B) {
			goroutines(b, func() func() {
				nc, err := nats.Connect(srv.URL(), rawOptions()...)
				if err != nil {
					b.Fatal(err)
				}
				if err := nc.Flush(); err != nil {
					b.Fatal(err)
				}
				return nc.Close
			})
		}, func(b *testing.B) {
			goroutines(b, func() func() {
				c := dialClient(b, srv.URL())
				if err := c.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
				return func() {
					if err := c.Close(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	})
	b.Run("Subscription", func(b *testing.B) {
		srv := newServer(b, false)
		subjects := make([]string, 5000)
		for i := range subjects {
			subjects[i] = fmt.Sprintf("bench.footprint.%d", i)
		}
		handler := func(*nats.Msg) {}
		runPair(b, func(b *testing.B) {
			subscriptionBytes(b, len(subjects), func() func() {
				nc, err := nats.Connect(srv.URL(), rawOptions()...)
				if err != nil {
					b.Fatal(err)
				}
				for _, s := range subjects {
					if _, err := nc.Subscribe(s, handler); err != nil {
						b.Fatal(err)
					}
				}
				if err := nc.Flush(); err != nil {
					b.Fatal(err)
				}
				return nc.Close
			}, func() func() {
				nc, err := nats.Connect(srv.URL(), rawOptions()...)
				if err != nil {
					b.Fatal(err)
				}
				return nc.Close
			})
		}, func(b *testing.B) {
			subscriptionBytes(b, len(subjects), func() func() {
				c := dialClient(b, srv.URL())
				for _, s := range subjects {
					if _, err := c.Subscribe(s, handler); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
				return func() { _ = c.Close(context.Background()) }
			}, func() func() {
				c := dialClient(b, srv.URL())
				return func() { _ = c.Close(context.Background()) }
			})
		})
	})
}

// settledGoroutines counts goroutines once the count has stopped moving:
// goroutines that a dial or a close left on their way out are gone.
func settledGoroutines(tb testing.TB) int {
	deadline := time.Now().Add(waitTimeout)
	n, same := runtime.NumGoroutine(), 0
	for same < 20 {
		if time.Now().After(deadline) {
			tb.Fatalf("goroutine count still changing after %v", waitTimeout)
		}
		time.Sleep(100 * time.Microsecond) // let exiting goroutines finish
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// goroutines reports how many goroutines one connection made by connect adds
// while it is idle. connect returns its close.
func goroutines(b *testing.B, connect func() func()) {
	base := settledGoroutines(b)
	total := 0
	b.ResetTimer()
	for range b.N {
		closeFn := connect()
		total += settledGoroutines(b) - base
		closeFn()
		if n := settledGoroutines(b); n != base {
			b.Fatalf("%d goroutines after close, %d before connect", n, base)
		}
	}
	b.ReportMetric(float64(total)/float64(b.N), "goroutines")
}

// inUse is the live heap after a collection.
func inUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// subscriptionBytes reports the memory n subscriptions add: a connection
// with them (withSubs) against the same connection without (bare), so that
// the connection's own memory cancels out. Each returns its close.
func subscriptionBytes(b *testing.B, n int, withSubs, bare func() func()) {
	var total int64
	goroutines := 0
	b.ResetTimer()
	for range b.N {
		before := inUse()
		closeBare := bare()
		mid, midG := inUse(), runtime.NumGoroutine()
		closeBare()
		closeSubs := withSubs()
		after, afterG := inUse(), runtime.NumGoroutine()
		closeSubs()
		total += (after - before) - (mid - before)
		goroutines += afterG - midG
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(n), "B/sub")
	b.ReportMetric(float64(goroutines)/float64(b.N)/float64(n), "goroutines/sub")
}
