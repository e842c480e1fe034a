package natsclient

import (
	"errors"
	"testing"
	"time"
)

// The breaker is a pure state machine: time is passed in, so these tests
// move a clock by hand instead of sleeping.

func testBreaker(threshold int) *breaker {
	b := newBreaker(threshold, time.Second, 8*time.Second)
	b.jitter = func(d time.Duration) time.Duration { return d }
	b.align = nil
	return &b
}

var errDial = errors.New("dial tcp: connection refused")

func TestBreakerOpensAtThreshold(t *testing.T) {
	now := time.Unix(1000, 0)
	b := testBreaker(3)
	for i := 1; i < 3; i++ {
		if b.failure(now, errDial) || b.state != BreakerClosed {
			t.Fatalf("opened after %d failures, threshold 3", i)
		}
	}
	if !b.failure(now, errDial) || b.state != BreakerOpen {
		t.Fatalf("not open at the threshold: %+v", b)
	}
	if b.trips != 1 || b.lastErr != errDial {
		t.Fatalf("trips %d, lastErr %v", b.trips, b.lastErr)
	}
	if got := b.untilProbe(now); got != time.Second {
		t.Fatalf("first open interval %v, want the base 1s", got)
	}
}

func TestBreakerSuccessResetsCount(t *testing.T) {
	now := time.Unix(1000, 0)
	b := testBreaker(3)
	b.failure(now, errDial)
	b.failure(now, errDial)
	if b.success() {
		t.Fatal("success on a closed breaker reported a state change")
	}
	b.failure(now, errDial)
	b.failure(now, errDial)
	if b.state != BreakerClosed {
		t.Fatal("failures before a success were still counted")
	}
}

func TestBreakerIntervalGrowsAndCaps(t *testing.T) {
	now := time.Unix(1000, 0)
	b := testBreaker(1)
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range want {
		b.failure(now, errDial) // opens (closed or half-open -> open)
		if got := b.untilProbe(now); got != w*time.Second {
			t.Fatalf("opening %d: interval %v, want %v", i+1, got, w*time.Second)
		}
		if b.beginProbe(now) {
			t.Fatalf("opening %d: probe began before the interval passed", i+1)
		}
		now = now.Add(w * time.Second)
		if !b.probeDue(now) || !b.beginProbe(now) || b.state != BreakerHalfOpen {
			t.Fatalf("opening %d: no probe when the interval passed", i+1)
		}
	}
	if !b.success() || b.state != BreakerClosed || b.opens != 0 {
		t.Fatalf("probe success did not close and reset: %+v", b)
	}
	b.failure(now, errDial)
	if got := b.untilProbe(now); got != time.Second {
		t.Fatalf("interval after a success %v, want it reset to 1s", got)
	}
}

func TestBreakerFailuresWhileOpenDoNotExtend(t *testing.T) {
	now := time.Unix(1000, 0)
	b := testBreaker(1)
	b.failure(now, errDial)
	until := b.openUntil
	later := errors.New("later")
	if b.failure(now.Add(500*time.Millisecond), later) {
		t.Fatal("a failure while open changed the state")
	}
	if !b.openUntil.Equal(until) || b.lastErr != later || b.trips != 1 {
		t.Fatalf("failure while open moved the probe or counted a trip: %+v", b)
	}
}

func TestStateNames(t *testing.T) {
	names := map[string]string{
		StateDisconnected.String(): "disconnected", StateConnecting.String(): "connecting",
		StateConnected.String(): "connected", StateReconnecting.String(): "reconnecting",
		StateClosed.String(): "closed", BreakerClosed.String(): "closed",
		BreakerOpen.String(): "open", BreakerHalfOpen.String(): "half-open",
	}
	for got, want := range names {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
