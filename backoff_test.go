package natsclient

import (
	"testing"
	"time"
)

// The wait rules are pure functions: randomness is injected as spread, time
// as durations, so these tests need neither a clock nor a server.

func TestJitterStaysWithinHalfAndAll(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 3, 2} {
		for range 1000 {
			if got := jitter(d); got < d/2 || got > d {
				t.Fatalf("jitter(%v) = %v, want within [%v, %v]", d, got, d/2, d)
			}
		}
	}
	for _, d := range []time.Duration{0, 1, -time.Second} {
		if got := jitter(d); got != max(d, 0) {
			t.Fatalf("jitter(%v) = %v", d, got)
		}
	}
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	base := 10 * time.Millisecond
	for attempt, ceiling := range map[int]time.Duration{1: base, 2: 2 * base, 4: 8 * base, 7: 64 * base, 40: 64 * base} {
		for range 100 {
			if got := backoff(base, attempt); got < ceiling/2 || got > ceiling {
				t.Fatalf("backoff(%v, %d) = %v, want within [%v, %v]", base, attempt, got, ceiling/2, ceiling)
			}
		}
	}
	if backoff(0, 3) != 0 {
		t.Fatal("backoff with no base waited")
	}
}

// The three spreads that bound and centre jitter: the longest wait it can
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
		reopenFor  time.Duration
		spread     func(time.Duration) time.Duration
		want       time.Duration
	}{
		{"closed: the reconnect wait", BreakerClosed, 0, 0, spreadAll, 2 * time.Second},
		{"closed: jittered down to half", BreakerClosed, 0, 0, spreadHalf, time.Second},
		{"open: the rest of the interval, as drawn when it opened", BreakerOpen, 3 * time.Second, 6 * time.Second, spreadHalf, 3 * time.Second},
		{"open, interval over: the reconnect wait", BreakerOpen, 0, 6 * time.Second, spreadAll, 2 * time.Second},
		{"open, interval over, jittered", BreakerOpen, -time.Second, 6 * time.Second, spreadHalf, time.Second},
		{"half-open: the longest reopening", BreakerHalfOpen, 0, 6 * time.Second, spreadAll, 6 * time.Second},
		{"half-open: jittered", BreakerHalfOpen, 0, 6 * time.Second, spreadHalf, 3 * time.Second},
		{"half-open: never below the reconnect wait", BreakerHalfOpen, 0, time.Second, spreadAll, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := dialWait(tc.breaker, tc.untilProbe, tc.reopenFor, reconnect2s, tc.spread); got != tc.want {
				t.Fatalf("dialWait = %v, want %v", got, tc.want)
			}
		})
	}
}

// downServerSchedule plays a client against a server that stays down for
// outage with the default options: the connection is lost at 0 (the first
// failure), then each dial waits what dialWait says and fails, feeding the
// breaker as the supervisor does. It returns the gaps between dials.
func downServerSchedule(spread func(time.Duration) time.Duration, outage time.Duration) []time.Duration {
	b := newBreaker(DefaultCircuitBreakerThreshold, DefaultReconnectWait, DefaultMaxBackoff)
	b.jitter = spread
	start := time.Unix(0, 0)
	now := start
	b.failure(now, errDial)
	var gaps []time.Duration
	for {
		wait := dialWait(b.state, b.untilProbe(now), b.interval(), DefaultReconnectWait, spread)
		if now.Add(wait).Sub(start) >= outage {
			return gaps
		}
		now = now.Add(wait)
		gaps = append(gaps, wait)
		b.beginProbe(now)
		b.failure(now, errDial)
	}
}

func TestReconnectScheduleAgainstADownServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spread func(time.Duration) time.Duration
		// Dials in a minute: nats.go's default schedule (2 s plus up to
		// 100 ms) makes about 29; the fleet goal is at most 0.6 of that on
		// average.
		minDials, maxDials int
	}{
		{"longest waits", spreadAll, 13, 13},
		{"mean waits", spreadMean, 15, 17},
		{"shortest waits", spreadHalf, 22, 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gaps := downServerSchedule(tc.spread, time.Minute)
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
