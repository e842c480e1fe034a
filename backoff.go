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

// around spreads the reconnect wait d uniformly over [3d/4, 5d/4]: on
// average what was configured, as nats.go's own schedule is (its 2 s plus
// up to 100 ms), so that a client dials no more often than nats.go would
// while the breaker is closed, and a fleet that lost its server at once
// spreads over half a wait.
func around(d time.Duration) time.Duration {
	if d <= 1 {
		return max(d, 0)
	}
	quarter := int64(d) / 4
	return time.Duration(int64(d) - quarter + rand.Int64N(2*quarter+1))
}

// dialWait is how long to wait before the next dial, or nats.go's next
// reconnect attempt, given the breaker's state:
//   - closed: the reconnect wait, spread (around). Without it every client of a
//     fleet that lost its server at the same instant would retry on the same
//     beat and land on the returning server together;
//   - open: what is left of the breaker's interval (jittered when it opened),
//     so that the attempt is the breaker's probe; once it has passed, the
//     spread reconnect wait, as when closed;
//   - half-open: none: the probe is due, and the attempt is it.
//
// spread is around, replaced in tests.
func dialWait(b BreakerState, untilProbe, reconnectWait time.Duration, spread func(time.Duration) time.Duration) time.Duration {
	switch b {
	case BreakerOpen:
		if untilProbe > 0 {
			return untilProbe
		}
	case BreakerHalfOpen:
		return 0
	}
	return spread(reconnectWait)
}

// wakeGrid is the spacing of the instants a wait of a second or more ends
// on. The clients of one process then wake together: a process with a
// thousand clients whose dials were spread uniformly woke a thousand
// times per round, and the Go runtime's wakeups (a thread out of futex
// sleep, a netpoll round, a timer) doubled what the dials cost. Aligned on
// a 100 ms grid, the same dials cost what a burst of them does
// (BenchmarkWakeGrid; docs/design.md, "The reconnect schedule at fleet
// scale"). Across
// processes the grid's phase is random (gridOrigin), so that a fleet of
// processes stays spread; within one, 100 ms is the granularity the
// server's accept rate is judged at.
const wakeGrid = 100 * time.Millisecond

// minAligned is the shortest wait aligned: a grid point moves a wait by up
// to wakeGrid, a tenth of a one-second wait, and shorter waits (a test's
// 20 ms reconnect wait) are left as drawn.
const minAligned = time.Second

// gridOrigin places this process's grid: a random phase within wakeGrid.
var gridOrigin = time.Now().Add(-time.Duration(rand.Int64N(int64(wakeGrid))))

// aligned shortens a wait d that starts at now so that it ends on the
// process's grid: at the last grid point at or before now+d, which is never
// later than d (a true ceiling stays one) and at most wakeGrid earlier.
// Waits shorter than minAligned are returned as they are.
func aligned(now time.Time, d time.Duration) time.Duration {
	return alignedOn(gridOrigin, now, d)
}

// alignedOn is aligned on the grid through origin.
func alignedOn(origin, now time.Time, d time.Duration) time.Duration {
	if d < minAligned {
		return d
	}
	since := now.Add(d).Sub(origin)
	off := since % wakeGrid
	if off < 0 {
		off += wakeGrid
	}
	return d - off
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
