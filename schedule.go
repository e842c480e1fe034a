package natsclient

import "time"

// The reconnect schedule: every wait before an attempt, from nats.go's
// reconnect loop or from the supervisor's own dial, is decided here from the
// breaker's state. How a wait grows and is spread is internal/backoff; why
// this schedule is in docs/design.md, "The reconnect schedule at fleet
// scale".

// dialWait is how long to wait before the next dial, or nats.go's next
// reconnect attempt, given the breaker's state:
//   - closed: the reconnect wait, spread (backoff.Around). Without it every
//     client of a fleet that lost its server at the same instant would retry
//     on the same beat and land on the returning server together;
//   - open: what is left of the breaker's interval (jittered when it opened),
//     so that the attempt is the breaker's probe; once it has passed, the
//     spread reconnect wait, as when closed;
//   - half-open: none: the probe is due, and the attempt is it.
//
// spread is backoff.Around, replaced in tests.
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
