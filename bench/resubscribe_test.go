package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats.go"
)

const resubscribeCount = 10000

// BenchmarkResubscribe restarts the server under 10,000 subscriptions, each
// on its own subject, and measures from the server accepting again to the
// connection being up (ms/connected) and to every subscription having
// received a message published after that (ms/receiving).
//
// The raw side is nats.go's own reconnect, which resends its subscriptions.
// The client is made to take its harder path: WithMaxReconnects(0) makes
// nats.go give the connection up at once, so the supervisor dials a new one
// and re-establishes every subscription from its registry before it reports
// Connected. Its breaker threshold is raised so that the failed dials while
// the server is down do not open it: this measures re-subscribing, not the
// breaker's backoff, which BenchmarkReconnect covers.
func BenchmarkResubscribe(b *testing.B) {
	subjects := make([]string, resubscribeCount)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("bench.resub.%d", i)
	}
	b.Run(fmt.Sprint(resubscribeCount), func(b *testing.B) {
		runPair(b, func(b *testing.B) {
			srv := newServer(b, false)
			down := make(chan time.Time, 16)
			up := make(chan time.Time, 16)
			nc := dialRaw(b, srv.URL(), rawCallbacks(down, up)...)
			var got atomic.Int64
			all := make(chan struct{}, 1)
			handler := countTo(&got, all)
			for _, s := range subjects {
				if _, err := nc.Subscribe(s, handler); err != nil {
					b.Fatal(err)
				}
			}
			resubscribe(b, srv, subjects, &got, all, restartSide{
				lost:      func() { receive(b, down, "raw disconnect") },
				connected: func() { receive(b, up, "raw reconnect") },
				flush:     nc.Flush,
			})
		}, func(b *testing.B) {
			srv := newServer(b, false)
			c := dialClient(b, srv.URL(),
				natsclient.WithMaxReconnects(0),
				natsclient.WithCircuitBreakerThreshold(1000))
			events := readEvents(b, c)
			var got atomic.Int64
			all := make(chan struct{}, 1)
			handler := countTo(&got, all)
			for _, s := range subjects {
				if _, err := c.Subscribe(s, handler); err != nil {
					b.Fatal(err)
				}
			}
			resubscribe(b, srv, subjects, &got, all, restartSide{
				lost: func() { waitFor(b, events, "Reconnecting event", isTo(natsclient.StateReconnecting)) },
				connected: func() {
					waitFor(b, events, "Connected event", isTo(natsclient.StateConnected))
				},
				flush: func() error { return c.Flush(context.Background()) },
			})
			if st := c.Stats(); st.Connections != uint64(b.N)+1 {
				b.Fatalf("client dialled %d connections in %d restarts; each restart should need a new one", st.Connections, b.N)
			}
		})
	})
}

// restartSide is how one side's connection is watched through a restart.
type restartSide struct {
	lost      func() // returns once the side has seen the connection drop
	connected func() // returns once the side reports being connected again
	flush     func() error
}

// countTo returns a handler that signals all when got reaches
// resubscribeCount.
func countTo(got *atomic.Int64, all chan<- struct{}) nats.MsgHandler {
	return func(*nats.Msg) {
		if got.Add(1) == resubscribeCount {
			all <- struct{}{}
		}
	}
}

// resubscribe runs the restart loop for one side. After the side reports
// being connected, a flush makes sure the server has its subscriptions before
// a fresh connection publishes one message to each subject.
func resubscribe(b *testing.B, srv *benchServer, subjects []string, got *atomic.Int64, all chan struct{}, side restartSide) {
	var upTotal, recvTotal time.Duration
	b.ResetTimer()
	for range b.N {
		srv.Stop()
		side.lost()
		srv.Start()
		accepting := time.Now()
		side.connected()
		upTotal += time.Since(accepting)
		if err := side.flush(); err != nil {
			b.Fatal(err)
		}
		got.Store(0)
		pub, err := nats.Connect(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range subjects {
			if err := pub.Publish(s, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := pub.Flush(); err != nil {
			b.Fatal(err)
		}
		receive(b, all, "a message on every subscription")
		recvTotal += time.Since(accepting)
		pub.Close()
	}
	b.StopTimer()
	n := float64(b.N) * float64(time.Millisecond)
	b.ReportMetric(float64(upTotal)/n, "ms/connected")
	b.ReportMetric(float64(recvTotal)/n, "ms/receiving")
}
