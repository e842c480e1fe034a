package natsclient

import (
	"bytes"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/c360/natsclient/internal/errs"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
)

// Subscription is a subscription made through the client. It outlives the
// connection it was made on: when the supervisor has to dial a new
// connection, it subscribes again and the handler keeps receiving.
type Subscription struct {
	client  *Client
	subject string
	queue   string
	handler nats.MsgHandler
	fn      MsgFunc              // set by SubscribeFunc: handler then calls it without a trace
	attrs   []attribute.KeyValue // span attributes of every delivery; nil without telemetry
	span    string               // the deliveries' span name, built once; "" without telemetry
	// inner is the nats.go subscription on the current connection. Only the
	// supervisor stores it.
	inner atomic.Pointer[nats.Subscription]
	// delivery says which goroutine nats.go runs the handler on, so that a
	// Close called from the handler can be told apart (see Client.Close).
	delivery atomic.Pointer[delivery]
}

// delivery is the goroutine that delivers an inner subscription's messages:
// nats.go runs one per asynchronous subscription.
type delivery struct {
	inner     *nats.Subscription
	goroutine uint64
}

// Subject returns the subject the subscription listens on.
func (s *Subscription) Subject() string { return s.subject }

// Queue returns the queue group, or "" for a plain subscription.
func (s *Subscription) Queue() string { return s.queue }

// Unsubscribe stops the subscription at once. Unsubscribing twice is an error
// matching nats.ErrBadSubscription.
func (s *Subscription) Unsubscribe() error { return s.stop(false) }

// Drain stops new messages from arriving and lets the handler finish those
// already received. It returns without waiting for that to end.
func (s *Subscription) Drain() error { return s.stop(true) }

func (s *Subscription) stop(drain bool) error {
	return s.client.sup.unsubscribe(s, drain)
}

// Subscribe calls handler, on a goroutine of nats.go's, for every message on
// subject, which may hold wildcards. The subscription is kept across
// reconnects and new connections until Unsubscribe, Drain or Close. Before
// Connect it returns ErrNotConnected.
func (c *Client) Subscribe(subject string, handler nats.MsgHandler) (*Subscription, error) {
	return c.subscribe(subject, "", handler)
}

// QueueSubscribe is Subscribe as a member of a queue group: each message goes
// to one member of the group.
func (c *Client) QueueSubscribe(subject, queue string, handler nats.MsgHandler) (*Subscription, error) {
	if err := wire.ValidateQueue(queue); err != nil {
		return nil, err
	}
	return c.subscribe(subject, queue, handler)
}

func (c *Client) subscribe(subject, queue string, handler nats.MsgHandler) (*Subscription, error) {
	if handler == nil {
		return nil, errs.InvalidArgument("nil message handler for subject %q", subject)
	}
	return c.subscribeWith(subject, queue, handler, nil)
}

func (c *Client) subscribeWith(subject, queue string, handler nats.MsgHandler, fn MsgFunc) (*Subscription, error) {
	if err := ValidateSubscribeSubject(subject); err != nil {
		return nil, err
	}
	if err := wire.CheckLine(subject, "SUB", wire.SubLineLen(subject, queue)); err != nil {
		return nil, err
	}
	sub := &Subscription{client: c, subject: subject, queue: queue, handler: handler, fn: fn}
	if c.tel != nil {
		sub.attrs, sub.span = processAttrs(subject, queue), "process "+subject
	}
	c.ensureRunning()
	if err := c.sup.subscribe(sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// attach subscribes sub on nc. Called by the supervisor only.
func (s *Subscription) attach(nc *nats.Conn) error {
	inner, err := nc.QueueSubscribe(s.subject, s.queue, s.deliver)
	if err != nil {
		return err
	}
	s.inner.Store(inner)
	return nil
}

// deliver runs the handler for one message. It learns the delivering
// goroutine from the first message of each inner subscription: after that,
// the cost per message is one atomic load and a compare.
func (s *Subscription) deliver(m *nats.Msg) {
	if d := s.delivery.Load(); d == nil || d.inner != m.Sub {
		s.delivery.Store(&delivery{inner: m.Sub, goroutine: goroutineID()})
	}
	if t := s.client.tel; t != nil {
		t.deliverObserved(s, m)
		return
	}
	s.handler(m)
}

// deliversOn reports whether the handler of the current inner subscription
// runs on goroutine g.
func (s *Subscription) deliversOn(g uint64) bool {
	d := s.delivery.Load()
	return d != nil && d.goroutine == g && d.inner == s.inner.Load()
}

// goroutineID returns the calling goroutine's id, read from the first line
// of its stack trace ("goroutine 18 [running]:"). Go offers no other way to
// know which goroutine calls; it is used only once per subscription and
// once per Close, never per message.
func goroutineID() uint64 {
	var buf [64]byte
	line := buf[:runtime.Stack(buf[:], false)]
	line = bytes.TrimPrefix(line, []byte("goroutine "))
	if i := bytes.IndexByte(line, ' '); i > 0 {
		line = line[:i]
	}
	id, _ := strconv.ParseUint(string(line), 10, 64)
	return id
}
