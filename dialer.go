package natsclient

import (
	"context"
	"net"
	"time"
)

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
