package natsclient

import "time"

// The supervisor's decisions, as pure functions of its phase, its breaker
// and the time: no channels, no connection, no clock of their own, so that
// decide_test.go can walk through them table-driven, as breaker_test.go does
// for the breaker. The handlers in supervisor_conn.go carry them out.

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
