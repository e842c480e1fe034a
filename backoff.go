package natsclient

import (
	"context"
	"math/rand/v2"
	"time"
)

// The client waits in three places: the breaker's open interval, the
// JetStream and KV retries after a failed attempt, and the followers that
// re-bind to a new connection. They all grow their waits the same way and
// spread them with the same jitter, defined here.

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
