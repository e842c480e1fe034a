package natsclient

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"
)

// The adapter between the supervisor and nats.go: the options each dial is
// made with, the callbacks that turn nats.go's notifications into events
// for the supervisor, nats.go's reconnect delay, and the dialer.

// natsOptions builds the nats.go options for one dial: the client's settings,
// then the user's, then the handlers the supervisor relies on, which call any
// handler the user set through WithNATSOptions.
//
// An option that fails is the dial's error, never skipped: nats.go's
// credentials option reads its file when applied, and dropping it would dial
// without the credentials the user configured.
func (s *supervisor) natsOptions() (nats.Options, error) {
	o, err := s.baseOptions(true) // ValidateSubject does it, once
	if err != nil {
		return o, err
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
	o.ReconnectErrCB = func(nc *nats.Conn, err error) {
		if userReconnectErr != nil {
			userReconnectErr(nc, err)
		}
		forward(connEvent{kind: evReconnectFailed, nc: nc, err: err})
	}
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
	o.CustomReconnectDelayCB = s.c.reconnectDelay
	o.CustomDialer = &lifeDialer{life: s.life, timeout: s.opts.timeout}
	o.RetryOnFailedConnect = false
	return o, nil
}

// baseOptions are the client's settings and then the user's nats.go
// options: what every connection the client dials starts from. The user's
// options come last, so they may turn subject validation back on.
func (s *supervisor) baseOptions(skipSubjectValidation bool) (nats.Options, error) {
	o := nats.GetDefaultOptions()
	o.Servers = s.servers
	o.Name = s.opts.name
	o.MaxReconnect = s.opts.maxReconnects
	o.ReconnectWait = s.opts.reconnectWait
	o.Timeout = s.opts.timeout
	o.PingInterval = s.opts.pingInterval
	o.SkipSubjectValidation = skipSubjectValidation
	for _, opt := range s.opts.natsOptions {
		if err := opt(&o); err != nil {
			return o, &optionError{err}
		}
	}
	return o, nil
}

// reconnectDelay is nats.go's wait before its next reconnect attempt, by
// the schedule of dialWait. It runs on nats.go's goroutine and reads only
// the published snapshot. Setting it turns nats.go's own reconnect jitter
// off; dialWait jitters every wait instead.
//
// nats.go calls it before each round of attempts, so a call after the first
// follows a failed round. A round that failed after the TCP connection was
// made (no INFO from a frozen server, a refused CONNECT, a failed TLS
// handshake) reaches no other callback: it is reported here, from the error
// nats.go kept, so that the breaker counts it. A failed dial leaves no error
// there; ReconnectErrCB has reported it already.
func (c *Client) reconnectDelay(attempt int) time.Duration {
	snap := c.snap.Load()
	if attempt > 1 && snap.conn != nil {
		if err := snap.conn.LastError(); err != nil {
			c.sup.reportFailure(snap.gen, fmt.Errorf("natsclient: reconnect: %w", err))
		}
	}
	return dialWait(snap.breaker, time.Until(snap.probeAt), snap.reopenFor, c.opts.reconnectWait, jitter)
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
// the first dial and for its own reconnects.
type lifeDialer struct {
	life    context.Context
	timeout time.Duration
}

func (d *lifeDialer) Dial(network, address string) (net.Conn, error) {
	dialer := net.Dialer{Timeout: d.timeout}
	return dialer.DialContext(d.life, network, address)
}
