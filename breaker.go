package natsclient

import (
	"time"

	"github.com/c360/natsclient/internal/backoff"
)

// breaker is the circuit breaker as a pure state machine: no goroutines, no
// locks, and every method takes the current time, so that it can be tested
// table-driven without sleeping. Only the supervisor goroutine touches it.
//
// Closed counts consecutive transport failures and opens at the threshold.
// Open waits an interval that starts at baseInterval and doubles with each
// reopening (capped at maxInterval, with jitter, see internal/backoff). When the interval has passed
// the supervisor begins its probe (half-open); the probe's result closes the
// breaker or reopens it with the next, longer interval.
type breaker struct {
	threshold    int
	baseInterval time.Duration
	maxInterval  time.Duration
	// jitter spreads an interval so that many clients do not probe a
	// recovering server in lockstep. Tests replace it with the identity.
	jitter func(time.Duration) time.Duration
	// align ends an interval on the process's wake-up grid
	// (backoff.Aligned); nil leaves it as jitter drew it, as tests do.
	align func(now time.Time, d time.Duration) time.Duration

	state     BreakerState
	failures  int // consecutive transport failures
	opens     int // consecutive openings without a success; sets the interval
	trips     uint64
	openUntil time.Time
	lastErr   error
}

func newBreaker(threshold int, base, max time.Duration) breaker {
	return breaker{threshold: threshold, baseInterval: base, maxInterval: max, jitter: backoff.Jitter, align: backoff.Aligned}
}

// failure records a transport failure. It reports whether the breaker state
// changed (closed or half-open to open).
func (b *breaker) failure(now time.Time, err error) bool {
	b.lastErr = err
	b.failures++
	switch b.state {
	case BreakerClosed:
		if b.failures >= b.threshold {
			b.open(now)
			return true
		}
	case BreakerHalfOpen:
		// The probe failed: back to open with a longer interval.
		b.open(now)
		return true
	}
	// While open, failures only refresh the cause; the interval stands so
	// that a burst of failing calls cannot postpone recovery.
	return false
}

// success records a successful connection or probe. It closes the breaker and
// resets the interval; it reports whether the state changed.
func (b *breaker) success() bool {
	changed := b.state != BreakerClosed
	b.state = BreakerClosed
	b.failures = 0
	b.opens = 0
	return changed
}

func (b *breaker) open(now time.Time) {
	b.state = BreakerOpen
	b.trips++
	d := b.jitter(b.interval())
	if b.align != nil {
		d = b.align(now, d)
	}
	b.openUntil = now.Add(d)
	b.opens++
}

// interval is how long the breaker stays open this time: the base interval
// doubled for each consecutive opening, capped at maxInterval.
func (b *breaker) interval() time.Duration {
	return backoff.Doubled(b.baseInterval, b.opens, b.maxInterval)
}

// probeDue reports whether the breaker is open and its interval has passed.
func (b *breaker) probeDue(now time.Time) bool {
	return b.state == BreakerOpen && !now.Before(b.openUntil)
}

// beginProbe moves an open breaker whose interval has passed to half-open.
func (b *breaker) beginProbe(now time.Time) bool {
	if !b.probeDue(now) {
		return false
	}
	b.state = BreakerHalfOpen
	return true
}

// untilProbe is how long from now until the next probe may run; zero when the
// breaker is not open or the probe is due.
func (b *breaker) untilProbe(now time.Time) time.Duration {
	if b.state != BreakerOpen {
		return 0
	}
	return max(b.openUntil.Sub(now), 0)
}
