package natsclient

import (
	"errors"
	"testing"
	"time"
)

// The connection machine is pure: these tests give it a phase, a link, a
// breaker and a time, or walk it through what a supervisor would feed it,
// and check its answers, without a server or a clock.

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

func TestMachineState(t *testing.T) {
	waiter := []*connectCmd{{}}
	for _, tc := range []struct {
		phase       phase
		link        link
		waiters     []*connectCmd
		connections uint64
		want        State
	}{
		{idle, linkUnproven, nil, 0, StateDisconnected},
		// A Connect that has just arrived in idle: Connecting once a dial is
		// planned, not before.
		{idle, linkUnproven, waiter, 0, StateDisconnected},
		{dialling, linkUnproven, waiter, 0, StateConnecting},
		{waiting, linkUnproven, waiter, 0, StateConnecting},
		// The Connect was withdrawn while its dial runs.
		{dialling, linkUnproven, nil, 0, StateDisconnected},
		{probing, linkUnproven, nil, 1, StateConnecting},
		{connected, linkUnproven, nil, 1, StateConnecting}, // its first probe failed
		{probing, linkUp, nil, 1, StateConnected},          // the breaker's probe
		{connected, linkUp, waiter, 1, StateConnected},
		{connected, linkLost, nil, 1, StateReconnecting}, // nats.go reconnects it
		{probing, linkLost, waiter, 1, StateReconnecting},
		{idle, linkLost, nil, 1, StateReconnecting}, // nats.go gave it up
		{waiting, linkLost, nil, 2, StateReconnecting},
		{dialling, linkLost, waiter, 2, StateReconnecting},
		{closing, linkUp, nil, 1, StateClosed},
		{closing, linkLost, waiter, 1, StateClosed},
		{closed, linkUnproven, nil, 0, StateClosed},
	} {
		m := connMachine{phase: tc.phase, link: tc.link, waiters: tc.waiters, connections: tc.connections, breaker: *testBreaker(3)}
		if got := m.state(); got != tc.want {
			t.Errorf("phase %v, link %v, %d waiting, %d connections: state %v, want %v",
				tc.phase, tc.link, len(tc.waiters), tc.connections, got, tc.want)
		}
	}
}

// step is one thing that happens to the machine in TestMachineWalk, and what
// the machine shows after it.
type step struct {
	name        string
	at          time.Duration // the clock, from the start
	do          func(m *connMachine, now time.Time)
	wantState   State
	wantBreaker BreakerState
}

// TestMachineWalk feeds the machine what the supervisor would, with a clock
// moved by hand, and checks the state it shows after each step.
func TestMachineWalk(t *testing.T) {
	start := time.Unix(1000, 0)
	connect := func(cmd *connectCmd) func(*connMachine, time.Time) {
		return func(m *connMachine, now time.Time) {
			if err := refusal(m.phase, m.everConnected(), cmdConnect); err != nil {
				t.Fatalf("Connect refused: %v", err)
			}
			m.waiters = append(m.waiters, cmd)
			m.enter(nextDial(&m.breaker, now, time.Time{}, m.wantsConnection()))
		}
	}
	install := func(m *connMachine, _ time.Time) {
		m.installed()
		m.enter(probing, time.Time{})
	}
	answered := func(wantRecovered bool) func(*connMachine, time.Time) {
		return func(m *connMachine, _ time.Time) {
			m.enter(connected, time.Time{})
			if recovered, _ := m.proven(); recovered != wantRecovered {
				t.Fatalf("proven: recovered %t, want %t", recovered, wantRecovered)
			}
			m.takeWaiters()
		}
	}
	disconnected := func(m *connMachine, now time.Time) {
		m.enter(connected, time.Time{})
		m.lost()
		if _, probeAt := m.failure(now, errDial); !probeAt.IsZero() {
			t.Fatalf("one failure, threshold 2: probe at %v, want none", probeAt)
		}
	}
	secondFailure := func(m *connMachine, now time.Time) {
		opened, probeAt := m.failure(now, errDial)
		if !opened || !probeAt.Equal(m.breaker.openUntil) {
			t.Fatalf("failure at the threshold: opened %t, probe at %v; want opened, probe at %v", opened, probeAt, m.breaker.openUntil)
		}
		m.enter(connected, probeAt)
	}
	timer := func(want timerAction) func(*connMachine, time.Time) {
		return func(m *connMachine, now time.Time) {
			action, at := onTimer(m.phase, &m.breaker, now, m.wakeAt)
			if action != want {
				t.Fatalf("onTimer = %d, want %d", action, want)
			}
			switch action {
			case timerProbe:
				m.enter(probing, time.Time{})
			case timerRearm:
				m.enter(m.phase, at)
			}
		}
	}
	beginClose := func(m *connMachine, _ time.Time) {
		m.enter(closing, time.Time{})
		if err := refusal(m.phase, m.everConnected(), cmdConnect); !errors.Is(err, ErrClosed) {
			t.Fatalf("Connect while closing: %v, want ErrClosed", err)
		}
	}

	m := connMachine{breaker: *testBreaker(2)} // opens for 1s
	for _, st := range []step{
		{"Connect", 0, connect(&connectCmd{}), StateConnecting, BreakerClosed},
		{"dial succeeded", 0, install, StateConnecting, BreakerClosed},
		{"the server answered", 0, answered(false), StateConnected, BreakerClosed},
		{"nats.go lost the connection", time.Second, disconnected, StateReconnecting, BreakerClosed},
		{"a reconnect round failed", 2 * time.Second, secondFailure, StateReconnecting, BreakerOpen},
		{"too early for the probe", 2500 * time.Millisecond, timer(timerRearm), StateReconnecting, BreakerOpen},
		{"the interval is over", 3 * time.Second, timer(timerProbe), StateReconnecting, BreakerHalfOpen},
		{"the probe was answered", 3 * time.Second, answered(true), StateConnected, BreakerClosed},
		{"Close", 4 * time.Second, beginClose, StateClosed, BreakerClosed},
	} {
		st.do(&m, start.Add(st.at))
		if got := m.state(); got != st.wantState || m.breaker.state != st.wantBreaker {
			t.Fatalf("after %s: state %v, breaker %v; want %v, %v", st.name, got, m.breaker.state, st.wantState, st.wantBreaker)
		}
	}
	if m.reconnects != 1 || m.connections != 1 {
		t.Errorf("reconnects %d, connections %d; want 1, 1", m.reconnects, m.connections)
	}
}

func TestMachineWithdrawnConnect(t *testing.T) {
	now := time.Unix(1000, 0)
	m := connMachine{breaker: *testBreaker(3)}
	first, second := &connectCmd{}, &connectCmd{}
	m.waiters = []*connectCmd{first, second}
	m.enter(dialling, time.Time{})
	m.withdraw(first)
	if !m.wantsConnection() || m.state() != StateConnecting {
		t.Fatalf("one of two Connects withdrawn: wants %t, state %v; want true, connecting", m.wantsConnection(), m.state())
	}
	m.withdraw(second)
	if m.wantsConnection() || m.state() != StateDisconnected {
		t.Fatalf("both withdrawn: wants %t, state %v; want false, disconnected", m.wantsConnection(), m.state())
	}
	if p, _ := nextDial(&m.breaker, now, time.Time{}, m.wantsConnection()); p != idle {
		t.Fatalf("nextDial with nobody waiting = %v, want idle", p)
	}
	// Once a connection was made, the client wants one until Close.
	m.installed()
	if !m.wantsConnection() {
		t.Fatal("after a connection, nobody waiting: the machine no longer wants one")
	}
}

func TestMachineReady(t *testing.T) {
	now := time.Unix(1000, 0)
	m := connMachine{phase: connected, link: linkUp, connections: 1, breaker: *testBreaker(1)}
	if !m.ready() {
		t.Fatal("connected, breaker closed: not ready")
	}
	m.failure(now, errDial)
	if m.ready() {
		t.Fatal("connected, breaker open: ready, so Connect would return before the breaker closes")
	}
	m = connMachine{phase: probing, connections: 1, breaker: *testBreaker(1)}
	if m.ready() {
		t.Fatal("first connection not answered yet: ready")
	}
}

func TestFailureArmsTheProbeOnlyOnAHeldConnection(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		phase   phase
		wantArm bool
	}{
		{connected, true},
		{probing, false}, // the probe in flight answers first
		{waiting, false}, // nextDial arms the dial at the end of the interval
		{dialling, false},
	} {
		m := connMachine{phase: tc.phase, breaker: *testBreaker(1)}
		opened, probeAt := m.failure(now, errDial)
		if !opened || m.lastErr != errDial {
			t.Fatalf("%v: opened %t, lastErr %v", tc.phase, opened, m.lastErr)
		}
		if armed := !probeAt.IsZero(); armed != tc.wantArm {
			t.Errorf("%v: probe armed %t, want %t", tc.phase, armed, tc.wantArm)
		}
	}
}

func TestLinkNames(t *testing.T) {
	for l := linkUnproven; l <= linkLost; l++ {
		if l.String() == "" {
			t.Errorf("link %d has no name", l)
		}
	}
}
