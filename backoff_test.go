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
// breaker as the supervisor does. wait spreads the reconnect wait (around),
// interval the breaker's interval (jitter). It returns the gaps between
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

// The bounds and centre of around, as jitter's are above.
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

func TestAroundCentresOnTheWait(t *testing.T) {
	for _, d := range []time.Duration{2 * time.Second, 4, 3} {
		var sum time.Duration
		for range 4000 {
			got := around(d)
			if got < d*3/4 || got > d*5/4 {
				t.Fatalf("around(%v) = %v, want within [%v, %v]", d, got, d*3/4, d*5/4)
			}
			sum += got
		}
		if mean := sum / 4000; d == 2*time.Second && (mean < d*98/100 || mean > d*102/100) {
			t.Fatalf("around(%v) averages %v, want %v within 2%%", d, mean, d)
		}
	}
	for _, d := range []time.Duration{0, 1, -time.Second} {
		if got := around(d); got != max(d, 0) {
			t.Fatalf("around(%v) = %v", d, got)
		}
	}
}

// A wait of a second or more ends on the process's grid: never later than
// drawn, at most one grid step earlier, and two waits ending in the same
// step end at the same instant, which is what lets one process's clients
// wake together. Shorter waits are left as drawn.
func TestAlignedEndsOnTheGrid(t *testing.T) {
	origin := time.Unix(1000, 37*int64(time.Millisecond))
	now := time.Unix(2000, 0)
	for _, d := range []time.Duration{time.Second, 1500 * time.Millisecond, 2*time.Second + 99*time.Millisecond, 6 * time.Second} {
		for off := time.Duration(0); off < wakeGrid; off += 7 * time.Millisecond {
			start := now.Add(off)
			got := alignedOn(origin, start, d)
			if got > d || got <= d-wakeGrid {
				t.Fatalf("alignedOn(%v) from +%v = %v, want within (%v, %v]", d, off, got, d-wakeGrid, d)
			}
			if phase := start.Add(got).Sub(origin) % wakeGrid; phase != 0 {
				t.Fatalf("alignedOn(%v) from +%v ends %v past a grid point", d, off, phase)
			}
		}
	}
	// Two clients whose waits end 30 ms apart within one step wake at once.
	a := now.Add(alignedOn(origin, now, 2*time.Second+40*time.Millisecond))
	b := now.Add(10 * time.Millisecond).Add(alignedOn(origin, now.Add(10*time.Millisecond), 2*time.Second+60*time.Millisecond))
	if !a.Equal(b) {
		t.Fatalf("waits ending in one grid step end at %v and %v", a, b)
	}
	for _, d := range []time.Duration{0, 20 * time.Millisecond, 999 * time.Millisecond} {
		if got := alignedOn(origin, now, d); got != d {
			t.Fatalf("alignedOn(%v) = %v, want it as drawn", d, got)
		}
	}
	// An origin later than the end (no monotonic reading, a clock set back)
	// still lands on the grid.
	if got := alignedOn(now.Add(time.Hour+3*time.Millisecond), now, 2*time.Second); got > 2*time.Second || got <= 2*time.Second-wakeGrid {
		t.Fatalf("alignedOn with a later origin = %v", got)
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
			wait := aligned(now, dialWait(b.state, b.untilProbe(now), DefaultReconnectWait, around))
			if wait > DefaultMaxBackoff || wait <= DefaultReconnectWait/2-wakeGrid {
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
