package natsclient

import (
	"errors"
	"testing"
	"time"
)

// The supervisor's decisions are pure: these tests give them a phase, a
// breaker and a time, and check the answer, without a server or a clock.

func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		phase         phase
		everConnected bool
		cmd           command
		want          error
	}{
		{idle, false, cmdConnect, nil},
		{idle, false, cmdSubscribe, ErrNotConnected},
		{idle, true, cmdSubscribe, nil},
		{waiting, true, cmdSubscribe, nil},
		{dialling, false, cmdWatch, nil},
		{connected, true, cmdCancelConnect, nil},
		{closing, true, cmdConnect, ErrClosed},
		{closing, true, cmdSubscribe, ErrClosed},
		{closing, false, cmdSubscribe, ErrClosed}, // closed wins over never connected
		{closing, true, cmdWatch, ErrClosed},
		// A Connect withdrawn while Close runs must not move the state:
		// Closed is final (defect 5).
		{closing, true, cmdCancelConnect, ErrClosed},
		{closed, true, cmdCancelConnect, ErrClosed},
		{closing, true, cmdUnsubscribe, nil},
	} {
		if got := refusal(tc.phase, tc.everConnected, tc.cmd); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("refusal(%v, everConnected %t, command %d) = %v, want %v", tc.phase, tc.everConnected, tc.cmd, got, tc.want)
		}
	}
}

func TestNextDial(t *testing.T) {
	now := time.Unix(1000, 0)
	open := testBreaker(1)
	open.failure(now, errDial) // open until now+1s
	for _, tc := range []struct {
		name      string
		b         *breaker
		earliest  time.Time
		wanted    bool
		wantPhase phase
		wantAt    time.Time
	}{
		{"nobody wants a connection", testBreaker(3), time.Time{}, false, idle, time.Time{}},
		{"nobody wants one, breaker open", open, time.Time{}, false, idle, time.Time{}},
		{"a Connect waits", testBreaker(3), time.Time{}, true, dialling, time.Time{}},
		{"retry wait not over", testBreaker(3), now.Add(time.Second), true, waiting, now.Add(time.Second)},
		{"retry wait over", testBreaker(3), now, true, dialling, time.Time{}},
		{"breaker open: its interval, not the retry wait", open, now.Add(100 * time.Millisecond), true, waiting, now.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, at := nextDial(tc.b, now, tc.earliest, tc.wanted)
			if p != tc.wantPhase || !at.Equal(tc.wantAt) {
				t.Fatalf("nextDial = %v at %v, want %v at %v", p, at, tc.wantPhase, tc.wantAt)
			}
		})
	}
}

func TestOnTimer(t *testing.T) {
	now := time.Unix(1000, 0)
	openAt := func(opened time.Time) *breaker {
		b := testBreaker(1)
		b.failure(opened, errDial) // open for 1s from opened
		return b
	}
	for _, tc := range []struct {
		name        string
		phase       phase
		b           *breaker
		wakeAt      time.Time
		want        timerAction
		wantAt      time.Time
		wantBreaker BreakerState
	}{
		{"retry wait over: dial", waiting, testBreaker(3), now, timerDial, time.Time{}, BreakerClosed},
		{"fired early: wait again", waiting, testBreaker(3), now.Add(time.Second), timerRearm, now.Add(time.Second), BreakerClosed},
		{"interval over, no connection: the dial is the probe", waiting, openAt(now.Add(-time.Second)), now, timerDial, time.Time{}, BreakerHalfOpen},
		{"interval not over: wait for it", waiting, openAt(now), now, timerRearm, now.Add(time.Second), BreakerOpen},
		{"interval over, connection held: probe it", connected, openAt(now.Add(-2 * time.Second)), now, timerProbe, time.Time{}, BreakerHalfOpen},
		{"interval not over, connection held", connected, openAt(now), now, timerRearm, now.Add(time.Second), BreakerOpen},
		{"connected and proven: nothing", connected, testBreaker(3), time.Time{}, timerNone, time.Time{}, BreakerClosed},
		{"first probe failed, breaker closed: probe again", connected, testBreaker(3), now, timerProbe, time.Time{}, BreakerClosed},
		{"first probe failed, too early", connected, testBreaker(3), now.Add(time.Second), timerRearm, now.Add(time.Second), BreakerClosed},
		{"a stale timer while dialling", dialling, openAt(now.Add(-time.Second)), now, timerNone, time.Time{}, BreakerOpen},
		{"a stale timer while probing", probing, openAt(now.Add(-time.Second)), now, timerNone, time.Time{}, BreakerOpen},
		{"a stale timer while closing", closing, openAt(now.Add(-time.Second)), now, timerNone, time.Time{}, BreakerOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, at := onTimer(tc.phase, tc.b, now, tc.wakeAt)
			if got != tc.want || !at.Equal(tc.wantAt) || tc.b.state != tc.wantBreaker {
				t.Fatalf("onTimer = %d at %v, breaker %v; want %d at %v, breaker %v", got, at, tc.b.state, tc.want, tc.wantAt, tc.wantBreaker)
			}
		})
	}
}

func TestAfterDialFailure(t *testing.T) {
	for _, tc := range []struct {
		permanent, everConnected bool
		want                     dialFailure
	}{
		{false, false, retryDial},
		{false, true, retryDial},
		{true, false, giveUp},
		{true, true, tellAndRetry},
	} {
		if got := afterDialFailure(tc.permanent, tc.everConnected); got != tc.want {
			t.Errorf("afterDialFailure(permanent %t, everConnected %t) = %d, want %d", tc.permanent, tc.everConnected, got, tc.want)
		}
	}
}

func TestOnClose(t *testing.T) {
	for _, tc := range []struct {
		hasConn, ctxEnded bool
		want              closeAction
	}{
		{false, false, closeNothing},
		{false, true, closeNothing},
		{true, true, closeNow},
		{true, false, closeDrain},
	} {
		if got := onClose(tc.hasConn, tc.ctxEnded); got != tc.want {
			t.Errorf("onClose(hasConn %t, ctxEnded %t) = %d, want %d", tc.hasConn, tc.ctxEnded, got, tc.want)
		}
	}
}

func TestAfterProbe(t *testing.T) {
	now := time.Unix(1000, 0)
	closed := testBreaker(3)
	closed.failure(now, errDial) // counted, still closed
	if got := afterProbe(closed, now, 50*time.Millisecond); !got.Equal(now.Add(50 * time.Millisecond)) {
		t.Errorf("breaker closed: probe again at %v, want after the reconnect wait", got)
	}
	open := testBreaker(1)
	open.failure(now, errDial)
	if got := afterProbe(open, now, 50*time.Millisecond); !got.Equal(open.openUntil) {
		t.Errorf("breaker open: probe again at %v, want at the end of its interval %v", got, open.openUntil)
	}
}

func TestPhaseNames(t *testing.T) {
	for p := idle; p <= closed; p++ {
		if p.String() == "" {
			t.Errorf("phase %d has no name", p)
		}
	}
}
