package natstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/c360/natsclient"
)

// Await reads ch until a value satisfies match (nil matches anything) and
// returns it. It fails the test if ch closes first or nothing matches within
// timeout, listing the last values it read and passed over. Use it to wait
// for a state event or a message instead of sleeping:
//
//	events := client.StateChanges(ctx)
//	tc.Server.Restart()
//	natstest.Await(t, events, 10*time.Second, "reconnected", natstest.ToState(natsclient.StateConnected))
func Await[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string, match func(T) bool) T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var skipped passedOver[T]
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("natstest: channel closed while waiting for %s%s", what, skipped)
			}
			if match == nil || match(v) {
				return v
			}
			skipped.add(v)
		case <-deadline.C:
			t.Fatalf("natstest: no %s within %v%s", what, timeout, skipped)
		}
	}
}

// Receive returns the next value on ch, or its zero value if ch is closed:
// unlike Await, a close counts, since a Done channel signals by closing. It
// fails the test if neither happens within timeout.
//
//	natstest.Receive(t, consumption.Done(), 5*time.Second, "the consumption's end")
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case v := <-ch:
		return v
	case <-deadline.C:
		t.Fatalf("natstest: no %s within %v", what, timeout)
	}
	panic("unreachable: Fatalf stops the test's goroutine")
}

// Eventually polls cond every few milliseconds until it holds, and fails the
// test if it does not within timeout. It is for conditions that no event
// announces (a server-side counter, a goroutine count); where an event does,
// Await it instead.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("natstest: %s: not within %v", what, timeout)
		}
		time.Sleep(pollEvery)
	}
}

// pollEvery is how often Eventually asks again.
const pollEvery = 5 * time.Millisecond

// Context returns a context that ends after timeout, or when the test ends,
// whichever is first: a call that hangs fails the test with its context's
// error instead of holding it until go test's own timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// ToState matches a StateChange into s from another state, for Await.
func ToState(s natsclient.State) func(natsclient.StateChange) bool {
	return func(ev natsclient.StateChange) bool { return ev.To == s && ev.From != s }
}

// BreakerIs matches a StateChange after which the breaker is in state b, for
// Await.
func BreakerIs(b natsclient.BreakerState) func(natsclient.StateChange) bool {
	return func(ev natsclient.StateChange) bool { return ev.Breaker == b }
}

// passedOver keeps the last values Await read without a match, for its
// failure message: what did come instead is the first clue.
type passedOver[T any] struct {
	last  []T
	count int
}

const passedOverKept = 8

func (p *passedOver[T]) add(v T) {
	p.count++
	if len(p.last) == passedOverKept {
		p.last = append(p.last[:0], p.last[1:]...)
	}
	p.last = append(p.last, v)
}

func (p passedOver[T]) String() string {
	if p.count == 0 {
		return "; nothing else came"
	}
	s := fmt.Sprintf("; %d other values came, the last %d:", p.count, len(p.last))
	for _, v := range p.last {
		s += fmt.Sprintf("\n\t%+v", v)
	}
	return s
}
