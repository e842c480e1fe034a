package natsclient

import (
	"testing"
	"time"

	"github.com/c360/natsclient/internal/backoff"
)

// The schedule is a pure function: randomness is injected as spread, time
// as durations, so these tests need neither a clock nor a server.

// The three spreads that bound and centre backoff.Jitter: the longest wait it can
// draw, the shortest, and its mean.
var (
	spreadAll   = func(d time.Duration) time.Duration { return d }
	spreadHalf  = func(d time.Duration) time.Duration { return d / 2 }
	spreadMean  = func(d time.Duration) time.Duration { return d * 3 / 4 }
	reconnect2s = 2 * time.Second
)

func TestDialWait(t *testing.T) {
	cases := []struct {
		name       string
		breaker    BreakerState
		untilProbe time.Duration
		spread     func(time.Duration) time.Duration
		want       time.Duration
	}{
		{"closed: the reconnect wait", BreakerClosed, 0, spreadAll, 2 * time.Second},
		{"closed: jittered down to half", BreakerClosed, 0, spreadHalf, time.Second},
		{"open: the rest of the interval, as drawn when it opened", BreakerOpen, 3 * time.Second, spreadHalf, 3 * time.Second},
		{"open, interval over: the reconnect wait", BreakerOpen, 0, spreadAll, 2 * time.Second},
		{"open, interval over, jittered", BreakerOpen, -time.Second, spreadHalf, time.Second},
		{"half-open: the probe is due now", BreakerHalfOpen, 0, spreadAll, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := dialWait(tc.breaker, tc.untilProbe, reconnect2s, tc.spread); got != tc.want {
				t.Fatalf("dialWait = %v, want %v", got, tc.want)
			}
		})
	}
}

// downServerSchedule plays a client against a server that stays down for
// outage with the default options: the connection is lost at 0 (the first
// failure), then each dial waits what dialWait says and fails, feeding the
// breaker as the supervisor does. wait spreads the reconnect wait (backoff.Around),
// interval the breaker's interval (backoff.Jitter). It returns the gaps between
// dials.
func downServerSchedule(wait, interval func(time.Duration) time.Duration, outage time.Duration) []time.Duration {
	b := newBreaker(DefaultCircuitBreakerThreshold, DefaultReconnectWait, DefaultMaxBackoff)
	b.jitter = interval
	b.align = nil
	start := time.Unix(0, 0)
	now := start
	b.failure(now, errDial)
	var gaps []time.Duration
	for {
		gap := dialWait(b.state, b.untilProbe(now), DefaultReconnectWait, wait)
		if now.Add(gap).Sub(start) >= outage {
			return gaps
		}
		now = now.Add(gap)
		gaps = append(gaps, gap)
		b.beginProbe(now)
		b.failure(now, errDial)
	}
}

// The bounds and centre of backoff.Around, as Jitter's are above.
var (
	aroundMost  = func(d time.Duration) time.Duration { return d * 5 / 4 }
	aroundMean  = func(d time.Duration) time.Duration { return d }
	aroundLeast = func(d time.Duration) time.Duration { return d * 3 / 4 }
)

func TestReconnectScheduleAgainstADownServer(t *testing.T) {
	for _, tc := range []struct {
		name           string
		wait, interval func(time.Duration) time.Duration
		// Dials in a minute: nats.go's default schedule (2 s plus up to
		// 100 ms) makes about 29; the fleet goal is at most 0.6 of that on
		// average.
		minDials, maxDials int
	}{
		{"longest waits", aroundMost, spreadAll, 13, 13},
		{"mean waits", aroundMean, spreadMean, 16, 16},
		{"shortest waits", aroundLeast, spreadHalf, 22, 22},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gaps := downServerSchedule(tc.wait, tc.interval, time.Minute)
			for i, g := range gaps {
				// A returning server waits at most one gap to be noticed:
				// no gap may pass the cap, however the breaker moved.
				if g > DefaultMaxBackoff {
					t.Fatalf("gap %d = %v, over WithMaxBackoff's %v (gaps %v)", i, g, DefaultMaxBackoff, gaps)
				}
				if g < DefaultReconnectWait/2 {
					t.Fatalf("gap %d = %v, under half the reconnect wait (gaps %v)", i, g, gaps)
				}
			}
			if n := len(gaps); n < tc.minDials || n > tc.maxDials {
				t.Fatalf("%d dials in a minute, want %d..%d (gaps %v)", n, tc.minDials, tc.maxDials, gaps)
			}
		})
	}
}

// Aligned, the schedule against a down server keeps its bounds: no gap over
// WithMaxBackoff, none under half the reconnect wait less a grid step, and
// the dials in a minute within the jitter's range.
func TestAlignedScheduleAgainstADownServer(t *testing.T) {
	for range 200 {
		b := newBreaker(DefaultCircuitBreakerThreshold, DefaultReconnectWait, DefaultMaxBackoff)
		now := time.Now()
		start := now
		b.failure(now, errDial)
		dials := 0
		for {
			wait := backoff.Aligned(now, dialWait(b.state, b.untilProbe(now), DefaultReconnectWait, backoff.Around))
			if wait > DefaultMaxBackoff || wait <= DefaultReconnectWait/2-backoff.WakeGrid {
				t.Fatalf("gap %v after %d dials", wait, dials)
			}
			if now.Add(wait).Sub(start) >= time.Minute {
				break
			}
			now = now.Add(wait)
			dials++
			b.beginProbe(now)
			b.failure(now, errDial)
		}
		if dials < 13 || dials > 24 {
			t.Fatalf("%d dials in a minute, want 13..24", dials)
		}
	}
}
