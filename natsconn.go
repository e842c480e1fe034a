package natsclient

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// The adapter between the supervisor and nats.go: the options each dial is
// made with, the callbacks that turn nats.go's notifications into events
// for the supervisor, nats.go's reconnect delay, and the dialer.

// natsOptions builds the nats.go options for one dial: the client's settings,
// then the user's, then the handlers the supervisor relies on, which call any
// handler the user set through WithNATSOptions. It returns the dialer the
// connection will use, which names the connection to the supervisor.
//
// An option that fails is the dial's error, never skipped: nats.go's
// credentials option reads its file when applied, and dropping it would dial
// without the credentials the user configured.
func (s *supervisor) natsOptions() (nats.Options, *lifeDialer, error) {
	o, err := s.baseOptions(true) // ValidateSubject does it, once
	if err != nil {
		return o, nil, err
	}
	eventc, done := s.eventc, s.done
	forward := func(ev connEvent) {
		select {
		case eventc <- ev:
		case <-done:
		}
	}
	userDisconnect, userReconnect, userClosed := o.DisconnectedErrCB, o.ReconnectedCB, o.ClosedCB
	userReconnectErr, userAsyncErr := o.ReconnectErrCB, o.AsyncErrorCB
	o.DisconnectedErrCB = func(nc *nats.Conn, err error) {
		if userDisconnect != nil {
			userDisconnect(nc, err)
		}
		forward(connEvent{kind: evDisconnected, nc: nc, err: err})
	}
	o.ReconnectedCB = func(nc *nats.Conn) {
		if userReconnect != nil {
			userReconnect(nc)
		}
		forward(connEvent{kind: evReconnected, nc: nc})
	}
	// A failed reconnect attempt is counted when nats.go asks how long to
	// wait next (roundWait), not here: this callback runs later, on
	// nats.go's callback goroutine, and misses failures after the TCP
	// connection was made.
	o.ReconnectErrCB = userReconnectErr
	o.ClosedCB = func(nc *nats.Conn) {
		if userClosed != nil {
			userClosed(nc)
		}
		forward(connEvent{kind: evClosed, nc: nc})
	}
	o.AsyncErrorCB = func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if userAsyncErr != nil {
			userAsyncErr(nc, sub, err)
		}
		forward(connEvent{kind: evAsyncError, nc: nc, err: err})
	}
	dialer := newLifeDialer(s.life, s.c.opts.timeout)
	dialer.waits = make(chan time.Duration, 1)
	o.CustomDialer = dialer
	o.CustomReconnectDelayCB = func(round int) time.Duration { return s.roundWait(dialer, round) }
	o.RetryOnFailedConnect = false
	return o, dialer, nil
}

// baseOptions are the client's settings and then the user's nats.go
// options: what every connection the client dials starts from. The user's
// options come last, so they may turn subject validation back on.
func (s *supervisor) baseOptions(skipSubjectValidation bool) (nats.Options, error) {
	o := nats.GetDefaultOptions()
	o.Servers = s.servers
	o.Name = s.c.opts.name
	o.MaxReconnect = s.c.opts.maxReconnects
	o.ReconnectWait = s.c.opts.reconnectWait
	o.Timeout = s.c.opts.timeout
	o.PingInterval = s.c.opts.pingInterval
	o.SkipSubjectValidation = skipSubjectValidation
	for _, opt := range s.c.opts.natsOptions {
		if err := opt(&o); err != nil {
			return o, &optionError{err}
		}
	}
	return o, nil
}

// roundWait is nats.go's wait before its next round of reconnect attempts
// (one attempt per server). nats.go calls it before each round, so a call
// after the first follows a failed round: the failure goes to the supervisor,
// which counts it and answers with the wait, by the schedule of dialWait,
// ended on the process's wake-up grid. Asking, rather than computing the
// wait from a published snapshot, is what keeps nats.go's attempts on the
// breaker's schedule: nats.go calls this right after the attempt failed,
// before any callback could have told the supervisor.
//
// It blocks nats.go's reconnect goroutine, which holds no lock here, only
// until the supervisor's loop takes the report; a supervisor that has
// stopped answers nothing, and nats.go's loop ends at its next check for a
// closed connection.
func (s *supervisor) roundWait(dialer *lifeDialer, round int) time.Duration {
	r := roundReport{dialer: dialer, reply: dialer.waits}
	if round > 1 {
		r.failed = dialer.roundError()
	}
	select {
	case s.roundc <- r:
		return <-r.reply
	case <-s.done:
		return s.c.opts.reconnectWait
	}
}

// probe proves that the server processes what nc sends: a flush round trip
// (PING, PONG) within timeout. A flush needs no permission, so it works for
// a client allowed only to publish.
//
// It runs only while nats.go reports the connection connected. nats.go pairs
// each PONG with the oldest waiting flush; a PING queued while it reconnects
// and lost with a connection that fails during its handshake stays waiting
// for good, and every later flush is paired with the PONG of the one before
// and times out. A probe that finds the connection not connected fails at
// once instead: nats.go's next reconnect starts another.
func probe(nc *nats.Conn, timeout time.Duration) probeResult {
	if nc.Status() != nats.CONNECTED {
		return probeResult{nc: nc, err: nats.ErrConnectionReconnecting}
	}
	return probeResult{nc: nc, err: nc.FlushTimeout(timeout)}
}

// lifeDialer dials with the client's lifetime context, so that Close aborts a
// dial in progress instead of waiting out its timeout. nats.go uses it for
// the first dial and for its own reconnects. It keeps the connection's last
// dial error, and the connection once the first dial returned it, for
// roundError.
type lifeDialer struct {
	life    context.Context
	dialer  *net.Dialer
	lastErr atomic.Pointer[error]
	conn    atomic.Pointer[nats.Conn]
	// waits carries the supervisor's answers to roundWait, one at a time:
	// nats.go asks from its one reconnect goroutine per connection. Only
	// the supervisor's own connection has it.
	waits chan time.Duration
}

func newLifeDialer(life context.Context, timeout time.Duration) *lifeDialer {
	return &lifeDialer{life: life, dialer: &net.Dialer{Timeout: timeout}}
}

func (d *lifeDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := d.dialer.DialContext(d.life, network, address)
	if err != nil {
		d.lastErr.Store(&err)
	} else {
		d.lastErr.Store(nil)
	}
	return conn, err
}

// roundError is why the last round of reconnect attempts failed: an error
// after the TCP connection was made (no INFO from a frozen server, a refused
// CONNECT, a failed TLS handshake), which nats.go keeps as the connection's
// last error, or else the dial's own.
func (d *lifeDialer) roundError() error {
	if nc := d.conn.Load(); nc != nil {
		if err := nc.LastError(); err != nil {
			return fmt.Errorf("natsclient: reconnect: %w", err)
		}
	}
	if err := d.lastErr.Load(); err != nil {
		return fmt.Errorf("natsclient: reconnect: %w", *err)
	}
	return fmt.Errorf("natsclient: reconnect: %w", nats.ErrConnectionReconnecting)
}
