package reliability_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/c360/natsclient"
)

// waitTimeout bounds every wait for an event in this suite. Waits end as soon
// as the event arrives; the bound only says how long a broken promise may
// take to show.
const waitTimeout = 20 * time.Second

// testTimeout bounds the calls of one test, through natstest.Context.
const testTimeout = 2 * time.Minute

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
