package natstest

import (
	"fmt"
	"testing"
	"time"
)

// Await reads ch until a value satisfies match (nil matches anything) and
// returns it. It fails the test if ch closes first or nothing matches within
// timeout, listing the last values it read and passed over. Use it to wait
// for a state event or a message instead of sleeping:
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
