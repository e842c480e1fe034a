package natsclient

import (
	"context"
	"math/rand/v2"
	"time"
)

// The client waits in four places: before a dial or a reconnect attempt
// (dialWait), the breaker's open interval, the JetStream and KV retries
// after a failed attempt, and the followers that re-bind to a new
// connection. They all grow their waits the same way and spread them with
// the same jitter, defined here. Why this jitter and these defaults is in
// docs/design.md, "The reconnect schedule at fleet scale".

// jitter spreads d uniformly over [d/2, d]. A wait never exceeds what was
// configured (WithMaxBackoff is a true ceiling), and clients or writers that
// failed together do not retry together.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return max(d, 0)
	}
	half := int64(d) / 2
	return time.Duration(int64(d) - half + rand.Int64N(half+1))
}

// dialWait is how long to wait before the next dial, or nats.go's next
// reconnect attempt, given the breaker's state:
//   - closed: the reconnect wait, jittered. Without jitter every client of a
//     fleet that lost its server at the same instant would retry on the same
//     beat and land on the returning server together;
//   - open: what is left of the breaker's interval (jittered when it opened),
//     so that the attempt is the breaker's probe; once it has passed, the
//     jittered reconnect wait, as when closed;
//   - half-open: the probe just failed, and the breaker may not have
//     reopened yet: the longest interval it can reopen for, jittered, so that
//     a failing server does not get two attempts per interval.
//
// spread is jitter, replaced in tests.
func dialWait(b BreakerState, untilProbe, reopenFor, reconnectWait time.Duration, spread func(time.Duration) time.Duration) time.Duration {
	switch b {
	case BreakerOpen:
		if untilProbe > 0 {
			return untilProbe
		}
	case BreakerHalfOpen:
		return spread(max(reopenFor, reconnectWait))
	}
	return spread(reconnectWait)
}

// doubled is base doubled n times, capped at ceiling.
func doubled(base time.Duration, n int, ceiling time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// backoff is the wait before retry number attempt (1 for the first retry):
// base doubled for each earlier retry, capped at 64×base, with jitter.
func backoff(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		return 0
	}
	return jitter(doubled(base, attempt-1, 64*base))
}

// sleepCtx waits d, or until ctx ends, returning ctx's cause then.
func sleepCtx(ctx context.Context, d time.Duration) error {
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
