package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
)

// timedEvent is a StateChange and when a subscriber's goroutine read it.
type timedEvent struct {
	natsclient.StateChange
	read time.Time
}

// readEvents forwards every event of a new StateChanges subscription, with
// the time it was read, until the benchmark ends.
func readEvents(tb testing.TB, c *natsclient.Client) <-chan timedEvent {
	ctx, cancel := context.WithCancel(context.Background())
	in := c.StateChanges(ctx)
	out := make(chan timedEvent, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for ev := range in {
			out <- timedEvent{StateChange: ev, read: time.Now()}
		}
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return out
}

func isTo(s natsclient.State) func(timedEvent) bool {
	return func(ev timedEvent) bool { return ev.To == s && ev.From != s }
}

// BenchmarkStateFanout measures what one state event costs the supervisor
// with 1 and with 1,000 StateChanges subscribers, of which all but one never
// read.
//
// The supervisor takes an event's At time once, then hands the event to every
// subscriber in the same loop iteration. Two of its transitions emit two
// events back to back: a lost connection (Reconnecting, then, with threshold
// 1, the breaker opening) and a recovery (the breaker closing, then
// Connected). The gap between the At times of such a pair is the time spent
// delivering the first event to every subscriber, plus the bookkeeping
// between the two (publishing the next snapshot among it), which the run
// with one subscriber measures. Each iteration restarts the server and
// yields both gaps.
//
// The benchmark fails if the reading subscriber misses an event, or if a
// subscriber that never reads holds anything but the present at the end:
// the supervisor never waits on a subscriber and never loses the present.
func BenchmarkStateFanout(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("%d/client", n), func(b *testing.B) { stateFanout(benchMeter(b), n) })
	}
}

func stateFanout(m *meter, subscribers int) {
	srv := newServer(m, false)
	c := dialClient(m, srv.URL(),
		natsclient.WithCircuitBreakerThreshold(1),
		natsclient.WithReconnectWait(5*time.Millisecond),
		natsclient.WithMaxBackoff(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	silent := make([]<-chan natsclient.StateChange, subscribers-1)
	for i := range silent {
		silent[i] = c.StateChanges(ctx)
	}
	events := readEvents(m, c)

	// next reads the reading subscriber's next event, which must not report
	// missed ones: it reads as fast as events come.
	next := func() timedEvent {
		ev := natstest.Await(m, events, waitTimeout, "state event", func(timedEvent) bool { return true })
		if ev.Missed != 0 {
			m.Fatalf("the reading subscriber missed %d events", ev.Missed)
		}
		return ev
	}
	// gaps are the At differences of back-to-back pairs. A half-open probe
	// racing the restart can put a breaker change elsewhere; a pair that is
	// not the expected one is skipped, not counted.
	var gaps []time.Duration
	m.start()
	for range m.n {
		srv.Stop()
		lost := natstest.Await(m, events, waitTimeout, "Reconnecting event", isTo(natsclient.StateReconnecting))
		if opened := next(); opened.Breaker == natsclient.BreakerOpen && lost.Breaker == natsclient.BreakerClosed &&
			opened.From == natsclient.StateReconnecting && opened.To == natsclient.StateReconnecting {
			gaps = append(gaps, opened.At.Sub(lost.At))
		}
		srv.Start()
		var prev timedEvent
		for ev := next(); ; prev, ev = ev, next() {
			if isTo(natsclient.StateConnected)(ev) {
				if prev.Breaker == natsclient.BreakerClosed && prev.To == natsclient.StateReconnecting {
					gaps = append(gaps, ev.At.Sub(prev.At))
				}
				break
			}
		}
	}
	m.stop()
	if len(gaps) == 0 {
		m.Fatal("no pair of back-to-back events to measure")
	}
	// The median, not the mean: on a shared machine the supervisor is
	// sometimes descheduled between two events, which is not delivery cost.
	slices.Sort(gaps)
	m.report(float64(gaps[len(gaps)/2].Nanoseconds()), "ns/event")
	m.report(float64(gaps[0].Nanoseconds()), "min-ns/event")
	// The reading subscriber may get Connected while the supervisor is still
	// handing it to the others. A command is taken only between two loop
	// iterations: once one has been taken, the delivery is complete.
	barrier, stop := context.WithCancel(context.Background())
	c.StateChanges(barrier)
	stop()
	for i, ch := range silent {
		checkPresent(m, i, ch)
	}
}

// checkPresent reads what a subscriber that never read holds: at most its
// buffer, and the last event is the present (Connected).
func checkPresent(tb testing.TB, i int, ch <-chan natsclient.StateChange) {
	var last natsclient.StateChange
	n := 0
	for drained := false; !drained; {
		select {
		case ev := <-ch:
			last, n = ev, n+1
		default:
			drained = true
		}
	}
	if n == 0 || last.To != natsclient.StateConnected {
		tb.Fatalf("silent subscriber %d: %d events, last %v->%v; want the present, Connected, last", i, n, last.From, last.To)
	}
}

// BenchmarkReconnect measures, for a raw nats.go connection and a client on
// the same server, the time from the restarted server accepting connections
// (Start has returned) to the application learning it is connected again:
// nats.go's ReconnectedCB running, the client's Connected event being read.
// Both have the same reconnect wait and no jitter; both see the same restart,
// so the difference is what the client adds. Reported: raw-ms, client-ms and
// extra-ms (client − raw), means over the iterations.
func BenchmarkReconnect(b *testing.B) {
	b.Run("both", func(b *testing.B) { reconnect(benchMeter(b)) })
}

func reconnect(m *meter) {
	srv := newServer(m, false)
	rawDown := make(chan time.Time, 16)
	rawUp := make(chan time.Time, 16)
	nc := dialRaw(m, srv.URL(), rawCallbacks(rawDown, rawUp)...)
	c := dialClient(m, srv.URL())
	events := readEvents(m, c)
	var rawTotal, clientTotal time.Duration
	m.start()
	for range m.n {
		srv.Stop()
		natstest.Receive(m, rawDown, waitTimeout, "raw disconnect")
		natstest.Await(m, events, waitTimeout, "Reconnecting event", isTo(natsclient.StateReconnecting))
		srv.Start()
		accepting := time.Now()
		rawAt := natstest.Receive(m, rawUp, waitTimeout, "raw reconnect")
		up := natstest.Await(m, events, waitTimeout, "Connected event", isTo(natsclient.StateConnected))
		rawTotal += rawAt.Sub(accepting)
		clientTotal += up.read.Sub(accepting)
	}
	m.stop()
	if !nc.IsConnected() {
		m.Fatal("raw connection not connected at the end")
	}
	n := float64(m.n) * float64(time.Millisecond)
	m.report(float64(rawTotal)/n, "raw-ms")
	m.report(float64(clientTotal)/n, "client-ms")
	m.report(float64(clientTotal-rawTotal)/n, "extra-ms")
}
