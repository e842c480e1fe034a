package backoff

import (
	"math/rand/v2"
	"time"
)

// WakeGrid is the spacing of the instants a wait of a second or more ends
// on. The clients of one process then wake together: a process with a
// thousand clients whose dials were spread uniformly woke a thousand
// times per round, and the Go runtime's wakeups (a thread out of futex
// sleep, a netpoll round, a timer) doubled what the dials cost. Aligned on
// a 100 ms grid, the same dials cost what a burst of them does
// (BenchmarkWakeGrid; docs/design.md, "The reconnect schedule at fleet
// scale"). Across processes the grid's phase is random (gridOrigin), so
// that a fleet of processes stays spread; within one, 100 ms is the
// granularity the server's accept rate is judged at.
const WakeGrid = 100 * time.Millisecond

// minAligned is the shortest wait aligned: a grid point moves a wait by up
// to WakeGrid, a tenth of a one-second wait, and shorter waits (a test's
// 20 ms reconnect wait) are left as drawn.
const minAligned = time.Second

// gridOrigin places this process's grid: a random phase within WakeGrid.
var gridOrigin = time.Now().Add(-time.Duration(rand.Int64N(int64(WakeGrid))))

// Aligned shortens a wait d that starts at now so that it ends on the
// process's grid: at the last grid point at or before now+d, which is never
// later than d (a true ceiling stays one) and at most WakeGrid earlier.
// Waits shorter than a second are returned as they are.
func Aligned(now time.Time, d time.Duration) time.Duration {
	return alignedOn(gridOrigin, now, d)
}

// alignedOn is Aligned on the grid through origin.
func alignedOn(origin, now time.Time, d time.Duration) time.Duration {
	if d < minAligned {
		return d
	}
	since := now.Add(d).Sub(origin)
	off := since % WakeGrid
	if off < 0 {
		off += WakeGrid
	}
	return d - off
}
