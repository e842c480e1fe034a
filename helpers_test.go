package natsclient_test

import (
	"context"
	"github.com/c360/natsclient/testing/natstest"
	"testing"
	"time"

	"github.com/c360/natsclient"
)

// waitTimeout bounds every wait for an event in these tests.
const waitTimeout = 15 * time.Second

// waitEvent reads events until one satisfies match, failing the test at the
// deadline. It returns the matching event.
func waitEvent(t *testing.T, events <-chan natsclient.StateChange, what string, match func(natsclient.StateChange) bool) natsclient.StateChange {
	t.Helper()
	return natstest.Await(t, events, waitTimeout, what, match)
}

func toState(s natsclient.State) func(natsclient.StateChange) bool {
	return func(ev natsclient.StateChange) bool { return ev.To == s && ev.From != s }
}

func breakerIs(b natsclient.BreakerState) func(natsclient.StateChange) bool {
	return func(ev natsclient.StateChange) bool { return ev.Breaker == b }
}

// eventually polls cond until it holds, for conditions no event announces.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive waits for one message on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch: // a closed channel counts: Done channels signal by closing
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("no %s within %v", what, waitTimeout)
	}
	var zero T
	return zero
}

// placeContext bounds one attempt to create a replicated stream or bucket
// (natstest.Cluster.Place): an attempt that times out on a loaded machine is
// made again, with a context of its own.
func placeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
