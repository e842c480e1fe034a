package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
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
	subjects := resubscribeSubjects(resubscribeCount)
	b.Run(fmt.Sprint(resubscribeCount), func(b *testing.B) {
		runPair(b,
			func(b *testing.B) { rawResubscribe(benchMeter(b), subjects) },
			func(b *testing.B) { clientResubscribe(benchMeter(b), subjects) })
	})
}

func resubscribeSubjects(n int) []string {
	subjects := make([]string, n)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("bench.resub.%d", i)
	}
	return subjects
}

// rawResubscribe is the raw side: nats.go's own reconnect resends its
// subscriptions.
func rawResubscribe(m *meter, subjects []string) {
	srv := newServer(m, false)
	down := make(chan time.Time, 16)
	up := make(chan time.Time, 16)
	nc := dialRaw(m, srv.URL(), rawCallbacks(down, up)...)
	var got atomic.Int64
	all := make(chan struct{}, 1)
	handler := countTo(&got, all, len(subjects))
	for _, s := range subjects {
		if _, err := nc.Subscribe(s, handler); err != nil {
			m.Fatal(err)
		}
	}
	resubscribe(m, srv, subjects, &got, all, restartSide{
		lost:      func() { natstest.Receive(m, down, waitTimeout, "raw disconnect") },
		connected: func() { natstest.Receive(m, up, waitTimeout, "raw reconnect") },
		flush:     nc.Flush,
	})
}

// clientResubscribe is the client side, made to dial a new connection on
// every restart and subscribe everything again from its registry.
func clientResubscribe(m *meter, subjects []string) {
	srv := newServer(m, false)
	c := dialClient(m, srv.URL(),
		natsclient.WithMaxReconnects(0),
		natsclient.WithCircuitBreakerThreshold(1000))
	events := readEvents(m, c)
	var got atomic.Int64
	all := make(chan struct{}, 1)
	handler := countTo(&got, all, len(subjects))
	for _, s := range subjects {
		if _, err := c.Subscribe(s, handler); err != nil {
			m.Fatal(err)
		}
	}
	resubscribe(m, srv, subjects, &got, all, restartSide{
		lost: func() {
			natstest.Await(m, events, waitTimeout, "Reconnecting event", isTo(natsclient.StateReconnecting))
		},
		connected: func() {
			natstest.Await(m, events, waitTimeout, "Connected event", isTo(natsclient.StateConnected))
		},
		flush: func() error { return c.Flush(context.Background()) },
	})
	if st := c.Stats(); st.Connections != uint64(m.n)+1 {
		m.Fatalf("client dialled %d connections in %d restarts; each restart should need a new one", st.Connections, m.n)
	}
}

// restartSide is how one side's connection is watched through a restart.
type restartSide struct {
	lost      func() // returns once the side has seen the connection drop
	connected func() // returns once the side reports being connected again
	flush     func() error
}

// countTo returns a handler that signals all when got reaches n.
func countTo(got *atomic.Int64, all chan<- struct{}, n int) nats.MsgHandler {
	return func(*nats.Msg) {
		if got.Add(1) == int64(n) {
			all <- struct{}{}
		}
	}
}

// resubscribe runs the restart loop for one side. After the side reports
// being connected, a flush makes sure the server has its subscriptions before
// a fresh connection publishes one message to each subject.
func resubscribe(m *meter, srv *benchServer, subjects []string, got *atomic.Int64, all chan struct{}, side restartSide) {
	var upTotal, recvTotal time.Duration
	m.start()
	for range m.n {
		srv.Stop()
		side.lost()
		srv.Start()
		accepting := time.Now()
		side.connected()
		upTotal += time.Since(accepting)
		if err := side.flush(); err != nil {
			m.Fatal(err)
		}
		got.Store(0)
		pub, err := nats.Connect(srv.URL())
		if err != nil {
			m.Fatal(err)
		}
		for _, s := range subjects {
			if err := pub.Publish(s, nil); err != nil {
				m.Fatal(err)
			}
		}
		if err := pub.Flush(); err != nil {
			m.Fatal(err)
		}
		natstest.Receive(m, all, waitTimeout, "a message on every subscription")
		recvTotal += time.Since(accepting)
		pub.Close()
	}
	m.stop()
	n := float64(m.n) * float64(time.Millisecond)
	m.report(float64(upTotal)/n, "ms/connected")
	m.report(float64(recvTotal)/n, "ms/receiving")
}
