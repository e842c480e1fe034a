package natstest

import (
	"testing"
	"time"
)

// Await reads ch until a value satisfies match (nil matches anything) and
// returns it. It fails the test if ch closes first or nothing matches within
// timeout. Use it to wait for a state event or a message instead of sleeping:
//
//	events := client.StateChanges(ctx)
//	tc.Server.Restart()
//	natstest.Await(t, events, 10*time.Second, "reconnected", func(ev natsclient.StateChange) bool {
//		return ev.To == natsclient.StateConnected
//	})
func Await[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string, match func(T) bool) T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("natstest: channel closed while waiting for %s", what)
			}
			if match == nil || match(v) {
				return v
			}
		case <-deadline.C:
			t.Fatalf("natstest: no %s within %v", what, timeout)
		}
	}
}
