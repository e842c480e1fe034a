package reliability_test

import (
	"context"
	"github.com/c360/natsclient/testing/natstest"
	"runtime"
	"testing"
	"time"

	"github.com/c360/natsclient"
)

// waitTimeout bounds every wait for an event in this suite. Waits end as soon
// as the event arrives; the bound only says how long a broken promise may
// take to show.
const waitTimeout = 20 * time.Second

// placeContext bounds one attempt to create a replicated stream or bucket
// (natstest.Cluster.Place): an attempt that times out on a loaded machine is
// made again, with a context of its own.
func placeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// awaitMatch reads ch until a value satisfies match (nil matches anything)
// and returns it; it fails the test if ch closes or nothing matches within
// waitTimeout.
func awaitMatch[T any](t testing.TB, ch <-chan T, what string, match func(T) bool) T {
	t.Helper()
	return natstest.Await(t, ch, waitTimeout, what, match)
}

// waitEvent waits for the state event that satisfies match.
func waitEvent(t testing.TB, events <-chan natsclient.StateChange, what string, match func(natsclient.StateChange) bool) natsclient.StateChange {
	t.Helper()
	return awaitMatch(t, events, what, match)
}

// receive waits for one value on ch.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	return awaitMatch(t, ch, what, nil)
}

// recordEvents subscribes to c's state changes and keeps every one until the
// test reads it. A goroutine moves each event at once from the client's
// channel into a large buffer: a test that is busy in a blocking fault (a
// container takes seconds to restart, while the breaker emits an event per
// probe) would otherwise let the 16 events a subscriber may leave unread
// overflow, and the client would rightly drop the old event the test waits
// for. The recording ends with the test or when the client closes.
func recordEvents(t testing.TB, c *natsclient.Client) <-chan natsclient.StateChange {
	ctx, cancel := context.WithCancel(context.Background())
	src := c.StateChanges(ctx)
	out := make(chan natsclient.StateChange, 4096)
	done := make(chan struct{})
	missed := 0
	go func() {
		defer close(done)
		defer close(out)
		for ev := range src {
			missed += ev.Missed
			select {
			case out <- ev:
			default:
				missed++
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if missed > 0 {
			t.Logf("state events missed by the recorder: %d", missed)
		}
	})
	return out
}

// toState matches a change of the connection state into s.
func toState(s natsclient.State) func(natsclient.StateChange) bool {
	return func(ev natsclient.StateChange) bool { return ev.To == s && ev.From != s }
}

// breakerIs matches an event after which the breaker is in state b.
func breakerIs(b natsclient.BreakerState) func(natsclient.StateChange) bool {
	return func(ev natsclient.StateChange) bool { return ev.Breaker == b }
}

// eventually polls cond until it holds, for conditions no event announces
// (a goroutine count, a server-side counter).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutinesBackTo waits until no more goroutines run than at the baseline,
// and fails with the count and a dump of the stacks if they do not.
func goroutinesBackTo(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines run, %d at the start; stacks:\n%s", runtime.NumGoroutine(), baseline, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newClient makes a client and closes it when the test ends.
func newClient(t testing.TB, url string, opts ...natsclient.Option) *natsclient.Client {
	t.Helper()
	c, err := natsclient.NewClient(url, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}
