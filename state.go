package natsclient

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The client's observable state: the connection's State and the breaker's,
// the StateChange events that announce them, the Stats counters, and the
// snapshot through which the hot path reads all of it. The supervisor derives
// each of them from its connection machine (connmachine.go) and publishes
// them; nothing here changes on its own.

// State is the client's connection state.
type State int32

// Connection states. A client starts Disconnected, moves to Connecting on
// Connect, to Connected once a connection is up, to Reconnecting while a lost
// connection is being re-established, and ends Closed after Close.
const (
	StateDisconnected State = iota
	StateConnecting
	StateConnected
	StateReconnecting
	StateClosed
)

// String returns the state's name, such as "connected".
func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// StateChange is one event on a StateChanges channel: a change of the
// connection state, of the breaker state, or both.
type StateChange struct {
	From, To State
	// Breaker is the breaker's state after the change.
	Breaker BreakerState
	// Err is the cause of the change, if any: the error that dropped the
	// connection or opened the breaker.
	Err error
	// At is when the supervisor made the change.
	At time.Time
	// Missed counts the events this subscriber did not read before this one
	// because its buffer was full. They were dropped so that this event, the
	// present, could be delivered without making the client wait.
	Missed int
}

// BreakerState is the state of the client's circuit breaker.
type BreakerState int32

// Breaker states. Closed lets calls through; Open fails them at once;
// HalfOpen means the supervisor is running its single probe.
const (
	BreakerClosed BreakerState = iota
	BreakerOpen
	BreakerHalfOpen
)

// String returns the breaker state's name, such as "open".
func (b BreakerState) String() string {
	switch b {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Stats are the client's counters. The message and byte counts add up every
// connection the client has had.
type Stats struct {
	State               State
	Breaker             BreakerState
	ConsecutiveFailures int
	BreakerTrips        uint64
	// BreakerRejections counts calls failed fast, without being sent,
	// because the breaker was open or half-open.
	BreakerRejections uint64
	// Reconnects counts recoveries after a lost connection, by nats.go's
	// reconnect or by a new connection the supervisor dialled.
	Reconnects uint64
	// Connections counts connections the supervisor dialled.
	Connections uint64
	LastError   error

	InMsgs, OutMsgs, InBytes, OutBytes uint64
}

func (s *Stats) add(n nats.Statistics) {
	s.InMsgs += n.InMsgs
	s.OutMsgs += n.OutMsgs
	s.InBytes += n.InBytes
	s.OutBytes += n.OutBytes
}

// snapshot is what the supervisor publishes for the hot path. It is never
// modified after publication; the supervisor replaces it.
type snapshot struct {
	conn *nats.Conn
	js   jetstream.JetStream // JetStream context on conn; nil when conn is
	gen  uint64              // connection generation: increases with each new connection
	// blocked is nil when calls may go through, and otherwise the error they
	// fail with at once: ErrNotConnected, ErrClosed or a *CircuitOpenError.
	// It is built once per transition, so failing fast allocates nothing.
	blocked error
	state   State
	breaker BreakerState
	stats   Stats
}
