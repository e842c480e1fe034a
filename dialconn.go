package natsclient

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DialConn dials a connection of the caller's own to the client's servers,
// with the client's settings (name, timeouts, reconnect limits) and the
// options given with WithNATSOptions (credentials, TLS, ...), then opts.
//
// It is for a component that needs nats.go settings the client's shared
// connection must not have: the outbox forwards on a connection that never
// reconnects and never buffers, so that a connection's loss is the end of
// everything sent on it. The supervisor does not own the connection: it has
// no breaker, no state events and no redial, and the caller closes it. The
// callbacks set through WithNATSOptions belong to the client's connection
// and are not set on it; nats.go's subject validation is on unless
// WithNATSOptions turned it off. Close aborts a dial in progress; after
// Close it fails with ErrClosed.
func (c *Client) DialConn(opts ...nats.Option) (*nats.Conn, error) {
	return c.DialConnContext(context.Background(), opts...)
}

// DialConnContext is DialConn bounded by ctx: when ctx ends before the
// connection is up, the dial, and the handshake with a server that accepted
// the TCP connection but does not answer, end at once with ctx's error
// rather than after the client's timeout. ctx bounds the dial only: once
// DialConnContext returns, the connection's reconnects (if the options allow
// them) are bounded by Close alone.
func (c *Client) DialConnContext(ctx context.Context, opts ...nats.Option) (*nats.Conn, error) {
	if ctx == nil {
		return nil, fmt.Errorf("natsclient: dial: %w", errNilContext)
	}
	s := c.sup
	select {
	case <-s.stopping():
		return nil, fmt.Errorf("natsclient: dial: %w", ErrClosed)
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natsclient: dial: %w", err)
	}
	o, err := s.baseOptions(false)
	if err != nil {
		return nil, err
	}
	o.DisconnectedErrCB, o.DisconnectedCB, o.ReconnectedCB, o.ClosedCB = nil, nil, nil, nil
	o.ReconnectErrCB, o.AsyncErrorCB, o.DiscoveredServersCB, o.LameDuckModeHandler = nil, nil, nil, nil
	dialing, stop := context.WithCancel(ctx)
	defer stop()
	unlink := context.AfterFunc(s.life, stop)
	defer unlink()
	dialer := &boundedDialer{life: newLifeDialer(s.life, c.opts.timeout), dialing: dialing}
	o.CustomDialer = dialer
	o.RetryOnFailedConnect = false
	for i, opt := range opts {
		if opt == nil {
			return nil, invalidOption("DialConn", "option %d is nil", i)
		}
		if err := opt(&o); err != nil {
			return nil, &optionError{err}
		}
	}
	nc, err := o.Connect()
	if interrupted := dialer.connected(); interrupted && err == nil {
		// ctx ended as the connection came up: its socket may already
		// carry the deadline that interrupts a handshake.
		nc.Close()
		err = dialing.Err()
	}
	if err != nil {
		switch {
		case s.life.Err() != nil:
			err = ErrClosed
		case ctx.Err() != nil:
			err = ctx.Err()
		}
		return nil, fmt.Errorf("natsclient: dial %s: %w", redactServers(s.servers), redactError(err, s.servers))
	}
	return nc, nil
}

// boundedDialer is the dialer of a DialConnContext connection. Until the
// connection is up it dials with the caller's ctx, and gives a dialled
// socket a deadline in the past when that ctx ends, so that a server that
// accepts and never answers does not hold the caller for nats.go's
// handshake timeout; after that its reconnects dial as the client's own
// connection does.
type boundedDialer struct {
	life    *lifeDialer
	dialing context.Context

	mu    sync.Mutex
	up    bool
	stops []func() bool // unhook each handshake socket from dialing
}

func (d *boundedDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	up := d.up
	d.mu.Unlock()
	if up {
		return d.life.Dial(network, address)
	}
	conn, err := d.life.dialer.DialContext(d.dialing, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.up { // else a reconnect that raced connected(): not the caller's to bound
		d.stops = append(d.stops, context.AfterFunc(d.dialing, func() { _ = conn.SetDeadline(time.Unix(1, 0)) }))
	}
	return conn, nil
}

// connected ends the bounded part: nats.go's first connect has returned.
// It reports whether the end of the caller's ctx had already reached a
// socket.
func (d *boundedDialer) connected() (interrupted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.up = true
	for _, stop := range d.stops {
		if !stop() {
			interrupted = true
		}
	}
	d.stops = nil
	return interrupted
}
