package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The waits are pure functions of durations and, for Aligned, of the
// instant a wait starts: these tests need neither a clock nor a server.

func TestJitterStaysWithinHalfAndAll(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 3, 2} {
		for range 1000 {
			if got := Jitter(d); got < d/2 || got > d {
				t.Fatalf("Jitter(%v) = %v, want within [%v, %v]", d, got, d/2, d)
			}
		}
	}
	for _, d := range []time.Duration{0, 1, -time.Second} {
		if got := Jitter(d); got != max(d, 0) {
			t.Fatalf("Jitter(%v) = %v", d, got)
		}
	}
}

func TestDelayDoublesToItsCap(t *testing.T) {
	base := 10 * time.Millisecond
	for attempt, ceiling := range map[int]time.Duration{1: base, 2: 2 * base, 4: 8 * base, 7: 64 * base, 40: 64 * base} {
		for range 100 {
			if got := Delay(base, attempt); got < ceiling/2 || got > ceiling {
				t.Fatalf("Delay(%v, %d) = %v, want within [%v, %v]", base, attempt, got, ceiling/2, ceiling)
			}
		}
	}
	if Delay(0, 3) != 0 {
		t.Fatal("backoff with no base waited")
	}
}

func TestAroundCentresOnTheWait(t *testing.T) {
	for _, d := range []time.Duration{2 * time.Second, 4, 3} {
		var sum time.Duration
		for range 4000 {
			got := Around(d)
			if got < d*3/4 || got > d*5/4 {
				t.Fatalf("Around(%v) = %v, want within [%v, %v]", d, got, d*3/4, d*5/4)
			}
			sum += got
		}
		if mean := sum / 4000; d == 2*time.Second && (mean < d*98/100 || mean > d*102/100) {
			t.Fatalf("Around(%v) averages %v, want %v within 2%%", d, mean, d)
		}
	}
	for _, d := range []time.Duration{0, 1, -time.Second} {
		if got := Around(d); got != max(d, 0) {
			t.Fatalf("Around(%v) = %v", d, got)
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
		for off := time.Duration(0); off < WakeGrid; off += 7 * time.Millisecond {
			start := now.Add(off)
			got := alignedOn(origin, start, d)
			if got > d || got <= d-WakeGrid {
				t.Fatalf("alignedOn(%v) from +%v = %v, want within (%v, %v]", d, off, got, d-WakeGrid, d)
			}
			if phase := start.Add(got).Sub(origin) % WakeGrid; phase != 0 {
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
	if got := alignedOn(now.Add(time.Hour+3*time.Millisecond), now, 2*time.Second); got > 2*time.Second || got <= 2*time.Second-WakeGrid {
		t.Fatalf("alignedOn with a later origin = %v", got)
	}
}

func TestDoubled(t *testing.T) {
	for _, tc := range []struct {
		base    time.Duration
		n       int
		ceiling time.Duration
		want    time.Duration
	}{
		{50 * time.Millisecond, 0, 2 * time.Second, 50 * time.Millisecond},
		{50 * time.Millisecond, 3, 2 * time.Second, 400 * time.Millisecond},
		{50 * time.Millisecond, 6, 2 * time.Second, 2 * time.Second},
		{50 * time.Millisecond, 1000, 2 * time.Second, 2 * time.Second},
		{3 * time.Second, 0, 2 * time.Second, 2 * time.Second},
	} {
		if got := Doubled(tc.base, tc.n, tc.ceiling); got != tc.want {
			t.Errorf("Doubled(%v, %d, %v) = %v, want %v", tc.base, tc.n, tc.ceiling, got, tc.want)
		}
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
	cause := errors.New("gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if err := Sleep(ctx, time.Hour); !errors.Is(err, cause) {
		t.Fatalf("Sleep on an ended ctx = %v, want its cause", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(0) on an ended ctx = %v, want its error", err)
	}
}
