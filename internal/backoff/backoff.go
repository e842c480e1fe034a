// Package backoff holds the waits of natsclient and its outbox: how a wait
// grows after repeated failures, how it is spread so that clients and
// writers that failed together do not retry together, and how a wait of a
// second or more is aligned so that one process's clients wake together.
//
// The client waits in five places: before a dial or a reconnect attempt,
// the breaker's open interval, the JetStream and KV retries after a failed
// attempt, the followers that re-bind to a new connection, and the outbox's
// forwarder between rounds. They all grow their waits with Doubled and
// spread them with Jitter or Around. Why this jitter and these defaults is
// in docs/design.md, "The reconnect schedule at fleet scale".
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter spreads d uniformly over [d/2, d]. A wait never exceeds what was
// configured (WithMaxBackoff is a true ceiling), and clients or writers that
// failed together do not retry together.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return max(d, 0)
	}
	half := int64(d) / 2
	return time.Duration(int64(d) - half + rand.Int64N(half+1))
}

// Around spreads the reconnect wait d uniformly over [3d/4, 5d/4]: on
// average what was configured, as nats.go's own schedule is (its 2 s plus
// up to 100 ms), so that a client dials no more often than nats.go would
// while the breaker is closed, and a fleet that lost its server at once
// spreads over half a wait.
func Around(d time.Duration) time.Duration {
	if d <= 1 {
		return max(d, 0)
	}
	quarter := int64(d) / 4
	return time.Duration(int64(d) - quarter + rand.Int64N(2*quarter+1))
}

// Doubled is base doubled n times, capped at ceiling.
func Doubled(base time.Duration, n int, ceiling time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Delay is the wait before retry number attempt (1 for the first retry):
// base doubled for each earlier retry, capped at 64×base, with Jitter.
func Delay(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		return 0
	}
	return Jitter(Doubled(base, attempt-1, 64*base))
}

// Sleep waits d, or until ctx ends, returning ctx's cause then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
