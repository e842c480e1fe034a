package reliability_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// Story 2: a frozen server (the TCP connection stays open, nothing answers)
// is detected by the pings within PingInterval × (MaxPingsOut + 1) plus a
// margin; the breaker opens and publishes fail fast; after Thaw the client
// recovers by itself, with no call from the test.
func TestFreeze(t *testing.T) {
	const (
		pingInterval = 200 * time.Millisecond
		maxPingsOut  = 2
		// margin covers the timers' and the scheduler's delays on a busy
		// machine under -race (seen up to 1.8s with a load of 7 on 2
		// cores); it is small beside the 6 minutes the default ping
		// interval would take, and beside the TCP timeouts that would
		// otherwise be the only detector.
		margin       = 1500 * time.Millisecond
		detectWithin = pingInterval*(maxPingsOut+1) + margin
	)
	tc := natstest.NewTestClient(t, natstest.WithClientOptions(
		natsclient.WithPingInterval(pingInterval),
		natsclient.WithNATSOptions(nats.MaxPingsOutstanding(maxPingsOut)),
		// The stale connection is one failure, the first reconnect attempt
		// (which hears nothing within the timeout) the second.
		natsclient.WithCircuitBreakerThreshold(2),
		natsclient.WithTimeout(300*time.Millisecond),
	))
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)
	got := make(chan string, 16)
	if _, err := c.Subscribe("freeze.data", func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)

	frozeAt := time.Now()
	tc.Server.Freeze()
	lost := natstest.Await(t, events, waitTimeout, "frozen server detected", natstest.ToState(natsclient.StateReconnecting))
	if took := lost.At.Sub(frozeAt); took > detectWithin {
		t.Fatalf("frozen server detected after %v, want within %v", took, detectWithin)
	} else {
		t.Logf("frozen server detected after %v (bound %v): %v", took, detectWithin, lost.Err)
	}
	if !errors.Is(lost.Err, nats.ErrStaleConnection) {
		t.Errorf("cause of the outage = %v, want nats.ErrStaleConnection", lost.Err)
	}
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))

	// Fail fast: every call is refused at once, none waits on the network.
	const calls = 1000
	runtime.GC() // a collection during the batch would measure the GC, not the call
	var slowest time.Duration
	remeasured := 0
	for i := range calls {
		took, err := timedPublish(c, "freeze.data")
		// On a loaded machine the OS may preempt the test for a time slice
		// in the middle of a call. A call that waits on the network is slow
		// every time; one the scheduler interrupted is fast when repeated.
		for try := 1; took >= time.Millisecond && try < 3; try++ {
			remeasured++
			took, err = timedPublish(c, "freeze.data")
		}
		if !errors.Is(err, natsclient.ErrCircuitOpen) {
			t.Fatalf("publish %d while frozen = %v, want ErrCircuitOpen", i, err)
		}
		if took >= time.Millisecond {
			t.Fatalf("publish %d while frozen took %v three times, want under 1ms", i, took)
		}
		slowest = max(slowest, took)
	}
	t.Logf("%d publishes failed fast, the slowest in %v (%d re-measured after a slow first try)", calls, slowest, remeasured)

	// Recovery is the supervisor's doing: the test only thaws the server.
	tc.Server.Thaw()
	natstest.Await(t, events, waitTimeout, "recovered after Thaw", func(ev natsclient.StateChange) bool {
		return ev.To == natsclient.StateConnected && ev.Breaker == natsclient.BreakerClosed
	})
	if err := c.Publish(ctx, "freeze.data", []byte("after")); err != nil {
		t.Fatalf("Publish after Thaw: %v", err)
	}
	if m := natstest.Await(t, got, waitTimeout, "message after Thaw", func(s string) bool { return s == "after" }); m != "after" {
		t.Fatalf("got %q", m)
	}
}

// timedPublish publishes once and says how long the call took.
func timedPublish(c *natsclient.Client, subject string) (time.Duration, error) {
	start := time.Now()
	err := c.Publish(context.Background(), subject, []byte("lost"))
	return time.Since(start), err
}
