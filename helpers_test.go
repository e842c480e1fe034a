package natsclient_test

import (
	"context"
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
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("state channel closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, waitTimeout)
		}
	}
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
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("no %s within %v", what, waitTimeout)
	}
	var zero T
	return zero
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
