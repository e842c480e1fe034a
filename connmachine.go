package natsclient

import "time"

// The connection machine: where the client's connection stands, as a plain
// struct with no channels, no connection and no clock of its own. The
// supervisor (supervisor.go) feeds it what happened, with the time, and
// carries out what it decides: like etcd-io/raft's rawnode.go beside
// node.go. connmachine_test.go walks through it table-driven, without a
// server, as breaker_test.go does for the breaker inside it.
//
// Two enums hold all of it: phase, what the supervisor is doing, and link,
// what the client last learnt of the server. State, the public value, and
// the refusals are computed from them, never stored beside them.

// phase is what the supervisor is doing.
//
// Legal combinations, and why:
//   - idle, dialling, waiting: no connection is held. dialling is the only
//     phase that starts with a dial in flight; waiting has the timer armed
//     for the next dial (the retry wait, or the breaker's open interval).
//   - connected, probing: a connection is held. nats.go may be reconnecting
//     it (link is linkLost then) and the breaker may be open or half-open.
//     probing has a flush round trip in flight: a connection counts as a
//     success for the breaker only once the server has answered on it, so
//     that a server that closes every new connection right after accepting
//     it keeps the breaker counting instead of resetting it each time.
//   - closing: Close began. A connection may still be held (draining), and
//     a dial or a probe started earlier may still be in flight: closing ends
//     when all three are gone, never earlier, so that no goroutine or
//     connection outlives Close.
//   - closed: final. The run loop has ended; nothing moves the machine out of
//     it, which is why State can never leave StateClosed.
//
// A result arriving in a phase that no longer waits for it (a dial that
// finished after a Connect was withdrawn, a probe overtaken by a lost
// connection) is discarded by its handler, after the in-flight channel is
// cleared.
type phase uint8

const (
	idle phase = iota
	dialling
	waiting
	connected
	probing
	closing
	closed
)

func (p phase) String() string {
	return [...]string{"idle", "dialling", "waiting", "connected", "probing", "closing", "closed"}[p]
}

// holdsConnection reports whether a connection is installed in phase p,
// outside Close.
func (p phase) holdsConnection() bool { return p == connected || p == probing }

// link is what the client last learnt of its connection to the server: that
// none has answered yet, that the present one answered, or that one was lost
// and none has answered since. It is what tells Connecting, Connected and
// Reconnecting apart, which the phase alone cannot: a connection is probed
// the first time, after nats.go reconnected it, and when the breaker's
// interval is over.
type link uint8

const (
	linkUnproven link = iota // no connection has answered yet
	linkUp                   // the present connection answered
	linkLost                 // a connection was lost; none has answered since
)

func (l link) String() string {
	return [...]string{"unproven", "up", "lost"}[l]
}

// connMachine is the supervisor's state, all of it that decides anything.
// Only the supervisor goroutine touches it.
type connMachine struct {
	phase   phase
	link    link
	breaker breaker
	// wakeAt is when the supervisor's timer next fires: a dial in waiting, a
	// probe in connected. Zero when it is stopped.
	wakeAt time.Time
	// waiters are the Connect calls waiting for a connection, answered
	// together (see supervisor.replyConnect).
	waiters []*connectCmd
	// connections counts the connections dialled. It is also the present
	// connection's generation, by which a failure report about a connection
	// since replaced is ignored.
	connections uint64
	// reconnects counts recoveries: a connection answering after a loss.
	reconnects uint64
	// lastErr is the last failure, counted by the breaker or permanent.
	lastErr error
}

// state is the connection state the client shows: Closed once Close began;
// with a connection held, what the server last showed of it; without one,
// Reconnecting after a loss, Connecting while a Connect waits for a dial,
// and Disconnected otherwise.
func (m *connMachine) state() State {
	switch {
	case m.phase >= closing:
		return StateClosed
	case m.link == linkLost:
		return StateReconnecting
	case m.phase.holdsConnection() && m.link == linkUp:
		return StateConnected
	case m.phase.holdsConnection():
		return StateConnecting // the first connection, not answered yet
	case m.phase != idle && len(m.waiters) > 0:
		return StateConnecting
	}
	return StateDisconnected
}

// everConnected reports whether a dial ever succeeded: from then on a lost
// connection is always dialled again, until Close.
func (m *connMachine) everConnected() bool { return m.connections > 0 }

// wantsConnection reports whether the supervisor should be dialling: a
// Connect is waiting, or the client was connected and lost its connection.
func (m *connMachine) wantsConnection() bool {
	return m.phase < closing && (len(m.waiters) > 0 || m.everConnected())
}

// ready reports whether a Connect has nothing to wait for.
func (m *connMachine) ready() bool {
	return m.state() == StateConnected && m.breaker.state == BreakerClosed
}

// enter moves to phase p, with the timer to fire at at (zero: stopped).
func (m *connMachine) enter(p phase, at time.Time) {
	m.phase, m.wakeAt = p, at
}

// withdraw removes a Connect whose context ended from the waiters.
func (m *connMachine) withdraw(cmd *connectCmd) {
	for i, w := range m.waiters {
		if w == cmd {
			m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
			return
		}
	}
}

// takeWaiters hands the waiting Connects over to be answered.
func (m *connMachine) takeWaiters() []*connectCmd {
	w := m.waiters
	m.waiters = nil
	return w
}

// installed records a new connection, whose generation is the new count.
func (m *connMachine) installed() { m.connections++ }

// proven records that the server answered on the connection: the breaker
// closes and the link is up. It reports whether this was a recovery after a
// loss and whether the breaker's state changed.
func (m *connMachine) proven() (recovered, breakerChanged bool) {
	recovered = m.link == linkLost
	if recovered {
		m.reconnects++
	}
	m.link = linkUp
	return recovered, m.breaker.success()
}

// lost records that the connection went away: nats.go is reconnecting it,
// or gave it up.
func (m *connMachine) lost() { m.link = linkLost }

// failure feeds a transport failure to the breaker. It reports whether the
// breaker opened, and, when the breaker is open on a held connection, the
// time of its probe, for which the timer is to be armed (zero otherwise).
func (m *connMachine) failure(now time.Time, err error) (opened bool, probeAt time.Time) {
	m.lastErr = err
	opened = m.breaker.failure(now, err)
	if m.phase == connected && m.breaker.state == BreakerOpen {
		probeAt = m.breaker.openUntil
	}
	return opened, probeAt
}

// command names a kind of command, for refusal.
type command uint8

const (
	cmdConnect command = iota
	cmdCancelConnect
	cmdSubscribe
	cmdUnsubscribe
	cmdWatch
)

// refusal is the answer to a command that cannot apply in phase p, or nil
// when its handler should run. It is the one place that says what a closing
// or never-connected client refuses; Close itself is never refused (a second
// Close joins the first).
//
// Unsubscribe is always taken: it only edits the registry, and after Close
// the caller gets ErrClosed from the stopped loop instead.
func refusal(p phase, everConnected bool, cmd command) error {
	if p >= closing && cmd != cmdUnsubscribe {
		return ErrClosed
	}
	if cmd == cmdSubscribe && !everConnected {
		return ErrNotConnected
	}
	return nil
}

// nextDial decides, for a supervisor without a connection, whether to dial
// now or when: not at all when no connection is wanted, at the end of the
// breaker's interval while it is open (the dial is then its probe), and
// otherwise not before earliest. It returns dialling, waiting (with the
// time) or idle.
func nextDial(b *breaker, now, earliest time.Time, wanted bool) (phase, time.Time) {
	switch {
	case !wanted:
		return idle, time.Time{}
	case b.state == BreakerOpen:
		return waiting, b.openUntil
	case earliest.After(now):
		return waiting, earliest
	}
	return dialling, time.Time{}
}

// timerAction is what the supervisor does when its timer fires.
type timerAction uint8

const (
	timerNone  timerAction = iota
	timerDial              // dial; the breaker may have begun its probe
	timerProbe             // probe the held connection (half-open, or not yet proven)
	timerRearm             // too early (the breaker is still open): wait again
)

// onTimer decides what a fired timer means in phase p. When the breaker's
// interval has passed it begins the probe (half-open), which is why it takes
// the breaker by pointer: the change is the decision's, made at now.
func onTimer(p phase, b *breaker, now, wakeAt time.Time) (timerAction, time.Time) {
	switch p {
	case waiting:
		if b.state == BreakerOpen {
			if b.beginProbe(now) {
				return timerDial, time.Time{}
			}
			return timerRearm, b.openUntil
		}
		if now.Before(wakeAt) {
			return timerRearm, wakeAt
		}
		return timerDial, time.Time{}
	case connected:
		switch {
		case b.beginProbe(now):
			return timerProbe, time.Time{}
		case b.state == BreakerOpen:
			return timerRearm, b.openUntil
		case wakeAt.IsZero():
			return timerNone, time.Time{}
		case now.Before(wakeAt):
			return timerRearm, wakeAt
		}
		// A connection whose first probe failed, the breaker still closed:
		// probe it again.
		return timerProbe, time.Time{}
	}
	return timerNone, time.Time{}
}

// dialFailure is what follows a failed dial.
type dialFailure uint8

const (
	// retryDial counts the failure and dials again, as nextDial decides.
	retryDial dialFailure = iota
	// giveUp answers Connect with the error and stops: the client never
	// connected and retrying cannot fix a permanent error (bad credentials,
	// a TLS failure). The breaker does not count it: nothing is wrong with
	// the server.
	giveUp
	// tellAndRetry answers the waiting Connects with the permanent error but
	// keeps dialling: a client that was connected never gives up before
	// Close (credentials may be rotated back).
	tellAndRetry
)

func afterDialFailure(permanent, everConnected bool) dialFailure {
	switch {
	case !permanent:
		return retryDial
	case everConnected:
		return tellAndRetry
	}
	return giveUp
}

// closeAction is what Close does with the connection.
type closeAction uint8

const (
	closeNothing closeAction = iota // no connection: nothing to drain
	closeNow                        // Close's ctx already ended: no time to drain
	closeDrain                      // drain it, until Close's ctx ends
)

func onClose(hasConn, ctxEnded bool) closeAction {
	switch {
	case !hasConn:
		return closeNothing
	case ctxEnded:
		return closeNow
	}
	return closeDrain
}

// afterProbe decides what follows a failed probe of a held connection: the
// failure is counted by the caller, and the connection is probed again
// after wait, unless the breaker is open, whose own interval then decides
// (onTimer's connected case).
func afterProbe(b *breaker, now time.Time, wait time.Duration) time.Time {
	if b.state == BreakerOpen {
		return b.openUntil
	}
	return now.Add(wait)
}
