package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// Story 1: twenty server restarts while a publisher and a subscriber run.
// Each outage shows as Connected → Reconnecting → Connected, the subscriber
// receives again after every one, and when it is over the client runs no
// more goroutines than before the first.
func TestRestartLoop(t *testing.T) {
	const restarts = 20
	tc := natstest.NewTestClient(t)
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)
	events := recordEvents(t, c)

	var newest atomic.Int64 // highest sequence number the subscriber has seen
	got := make(chan struct{}, 1)
	if _, err := c.Subscribe("loop.data", func(m *nats.Msg) {
		n, err := strconv.ParseInt(string(m.Data), 10, 64)
		if err != nil {
			return
		}
		for {
			old := newest.Load()
			if n <= old || newest.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case got <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Everything that should still run at the end runs now: the server, the
	// client's supervisor and connection, the subscription.
	baseline := runtime.NumGoroutine()

	pub := startPublisher(c, "loop.data")
	// receivedAfter waits until the subscriber sees a message the publisher
	// sent after seq.
	receivedAfter := func(seq int64, what string) {
		t.Helper()
		deadline := time.NewTimer(waitTimeout)
		defer deadline.Stop()
		for newest.Load() <= seq {
			select {
			case <-got:
			case <-deadline.C:
				t.Fatalf("%s: subscriber saw nothing after message %d within %v (publisher: %s)",
					what, seq, waitTimeout, pub.summary())
			}
		}
	}
	receivedAfter(0, "before the first restart")

	for i := range restarts {
		// In step with the server: connected, with no older event pending,
		// so that the outage waited for is this restart's.
		for drained := false; !drained; {
			select {
			case <-events:
			default:
				drained = true
			}
		}
		if c.State() != natsclient.StateConnected {
			natstest.Await(t, events, waitTimeout, fmt.Sprintf("connected before restart %d", i+1), natstest.ToState(natsclient.StateConnected))
		}
		restartAt := time.Now()
		tc.Server.Restart()
		down := natstest.Await(t, events, waitTimeout, fmt.Sprintf("outage %d", i+1), func(ev natsclient.StateChange) bool {
			return ev.To == natsclient.StateReconnecting && ev.From != natsclient.StateReconnecting && !ev.At.Before(restartAt)
		})
		if down.From != natsclient.StateConnected || down.Err == nil {
			t.Fatalf("outage %d: event %+v, want Connected → Reconnecting with a cause", i+1, down)
		}
		natstest.Await(t, events, waitTimeout, fmt.Sprintf("recovery %d", i+1), natstest.ToState(natsclient.StateConnected))
		receivedAfter(pub.sent.Load(), fmt.Sprintf("after restart %d", i+1))
	}
	pub.stop()

	st := c.Stats()
	// A reconnect may fail once more on its own (a container's port
	// forwarding accepts before the server listens): at least one per
	// restart, and not many more.
	if st.Reconnects < restarts || st.Reconnects > 2*restarts {
		t.Errorf("Stats().Reconnects = %d after %d restarts", st.Reconnects, restarts)
	}
	if st.State != natsclient.StateConnected || st.Breaker != natsclient.BreakerClosed {
		t.Errorf("after the loop: state %v, breaker %v; want connected, closed", st.State, st.Breaker)
	}
	if pub.ok.Load() == 0 {
		t.Fatal("no publish succeeded")
	}
	if err := pub.unexpected(); err != nil {
		t.Fatal(err)
	}
	t.Logf("publisher: %s; reconnects %d, breaker trips %d", pub.summary(), st.Reconnects, st.BreakerTrips)

	// The subscriber still receives a message published now, and nothing
	// the restarts started is left running.
	last := pub.sent.Load()
	if err := c.Publish(ctx, "loop.data", []byte(strconv.FormatInt(last+1, 10))); err != nil {
		t.Fatalf("publish after the loop: %v", err)
	}
	receivedAfter(last, "after the loop")
	goroutinesBackTo(t, baseline)
}

// publisher publishes increasing sequence numbers until stopped, counting
// what succeeded and how the rest failed.
type publisher struct {
	sent     atomic.Int64 // sequence number of the last publish attempted
	ok       atomic.Int64
	mu       sync.Mutex
	failures map[string]int // error kind → count
	wrong    error          // first error that is not an outage's
	quit     chan struct{}
	done     chan struct{}
}

func startPublisher(c *natsclient.Client, subject string) *publisher {
	p := &publisher{failures: map[string]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
			seq := p.sent.Add(1)
			err := c.Publish(context.Background(), subject, []byte(strconv.FormatInt(seq, 10)))
			if err == nil {
				p.ok.Add(1)
				continue
			}
			p.record(err)
		}
	}()
	return p
}

// outageErrors are the errors a publish may meet while the server is down:
// the breaker failing it fast, or nats.go refusing it mid-reconnect.
var outageErrors = []error{
	natsclient.ErrCircuitOpen,
	nats.ErrReconnectBufExceeded,
	nats.ErrConnectionReconnecting,
	nats.ErrConnectionClosed,
}

func (p *publisher) record(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, kind := range outageErrors {
		if errors.Is(err, kind) {
			p.failures[kind.Error()]++
			return
		}
	}
	p.failures["other"]++
	if p.wrong == nil {
		p.wrong = err
	}
}

func (p *publisher) unexpected() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wrong != nil {
		return fmt.Errorf("a publish failed with an error no outage explains: %w", p.wrong)
	}
	return nil
}

func (p *publisher) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d attempted, %d ok, failures %v", p.sent.Load(), p.ok.Load(), p.failures)
}

func (p *publisher) stop() {
	close(p.quit)
	<-p.done
}
