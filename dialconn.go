package natsclient

import (
	"fmt"

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
// WithNATSOptions turned it off. Close aborts a
// dial in progress; after Close it fails with ErrClosed.
func (c *Client) DialConn(opts ...nats.Option) (*nats.Conn, error) {
	s := c.sup
	select {
	case <-s.life.Done():
		return nil, fmt.Errorf("natsclient: dial: %w", ErrClosed)
	default:
	}
	o, err := s.baseOptions(false)
	if err != nil {
		return nil, err
	}
	o.DisconnectedErrCB, o.DisconnectedCB, o.ReconnectedCB, o.ClosedCB = nil, nil, nil, nil
	o.ReconnectErrCB, o.AsyncErrorCB, o.DiscoveredServersCB, o.LameDuckModeHandler = nil, nil, nil, nil
	o.CustomDialer = newLifeDialer(s.life, s.opts.timeout)
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
	if err != nil {
		return nil, fmt.Errorf("natsclient: dial %s: %w", redactServers(s.servers), redactError(err, s.servers))
	}
	return nc, nil
}
