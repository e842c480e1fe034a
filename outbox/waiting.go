package outbox

import (
	"errors"

	"github.com/c360/natsclient"
)

// Why forwarding waits, as Stats reports it (Stats.Waiting, Stats.LastError).
//
// The forwarder alone writes it, the rest only read it, so one atomic
// pointer to an immutable value is enough: a new value replaces the old.
type forwardStatus struct {
	waiting string // "" while forwarding runs
	lastErr error  // the fault that last paused forwarding; kept after it resumes
}

// wait records that forwarding is paused, and why. err is the fault that
// paused it; nil keeps the last one (a pause that is the client's state,
// not a fault of forwarding).
func (f *forwarder) wait(reason string, err error) {
	last := f.ob.status.Load()
	if err == nil && last != nil {
		if last.waiting == reason {
			return
		}
		err = last.lastErr
	}
	f.ob.status.Store(&forwardStatus{waiting: reason, lastErr: err})
	f.waiting = true
}

// going records that forwarding runs again: a message was acknowledged, or
// nothing is left to send.
func (f *forwarder) going() {
	f.waiting = false
	if last := f.ob.status.Load(); last != nil && last.waiting != "" {
		f.ob.status.Store(&forwardStatus{lastErr: last.lastErr})
	}
}

// pausedBy says why the client does not let forwarding run (see usable).
func (f *forwarder) pausedBy() string {
	if st := f.client.State(); st != natsclient.StateConnected {
		return "the client is " + st.String()
	}
	if _, err := f.client.JetStream(); err != nil {
		if errors.Is(err, natsclient.ErrCircuitOpen) {
			return "the client's circuit breaker is open"
		}
		return err.Error()
	}
	return "the client is not usable"
}
