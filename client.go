package natsclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/c360/natsclient/internal/classify"
	"github.com/c360/natsclient/internal/errs"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go"
)

// Client is a NATS client with a circuit breaker and a supervisor that keeps
// it connected until Close. It is safe for concurrent use.
//
// One supervisor goroutine owns the connection, the breaker and the
// subscription registry. Control calls (Connect, Close, Subscribe,
// StateChanges) are commands sent to it; the hot path (Publish, Request,
// Flush) reads the snapshot the supervisor publishes and costs one atomic
// load more than the nats.go call it makes.
type Client struct {
	opts options

	snap    atomic.Pointer[snapshot]
	running atomic.Bool
	sup     *supervisor
	// domain, when set, picks the JetStream domain of JetStream calls (see
	// domain.go); root is the client a Domain view was made from.
	domain *jsDomain
	root   *Client
	// tel is nil unless a tracer or meter provider or a propagator was
	// configured: the hot path tests it and nothing more.
	tel *telemetry
	// rejections counts calls the breaker failed fast.
	rejections atomic.Uint64
	// consumers holds the goroutines that run Consume handlers (goroutine
	// ID → struct{}), so that a Close called from one is told apart, as one
	// from a Subscription's handler is by the supervisor's registry: the
	// drain waits for the consumer's deliveries, the caller's among them.
	// A Domain view's consumers are its client's.
	consumers sync.Map
	// active counts Consume handlers and followers, which Close waits for
	// (activity.go). A Domain view's are its client's.
	active activity
}

// NewClient returns a client for url, one server or a comma-separated list,
// configured by opts. It does not connect: call Connect. The client's
// goroutines start with its first call and end with Close; call Close also
// when Connect failed.
//
// The options, with their defaults:
//
// Connection and breaker:
//   - WithMaxReconnects(n), -1: the attempts one nats.go connection makes
//     before nats.go gives it up (-1: never), after which the client dials a
//     new one; the client itself never gives up before Close.
//   - WithReconnectWait(d), 2s: the average wait between reconnect attempts
//     while the breaker is closed (drawn from 3/4 to 5/4 of it), and the
//     breaker's first open interval.
//   - WithTimeout(d), 5s: the dial timeout; the bound on Flush, Request and
//     each JetStream request when ctx has no deadline; the probe's timeout.
//   - WithCircuitBreakerThreshold(n), 5: consecutive transport failures that
//     open the breaker.
//   - WithMaxBackoff(d), 6s or the reconnect wait when that is longer: the
//     cap of the breaker's doubling open interval, and so of the wait between
//     two dials; at least the reconnect wait.
//   - WithPingInterval(d), 2m: how often the server is pinged; two missed
//     pings drop the connection.
//   - WithName(s), none: the connection name the server shows.
//   - WithJetStreamDomain(d), none (the server's own JetStream): the domain
//     of the client's JetStream and Key-Value calls.
//   - WithNATSOptions(opts...), none: any nats.go option, applied after the
//     client's own; handlers set there run in addition to the client's.
//
// Callbacks, run in order on a goroutine of the client's, never inside the
// supervisor: WithDisconnectCallback(fn), WithReconnectCallback(fn),
// WithClosedCallback(fn).
//
// Authentication and TLS: WithUserInfo(user, password), WithToken(t),
// WithCredentials(file), WithNKeyFile(file), WithTLSConfig(cfg), and
// WithClientCert(certFile, keyFile) for mutual TLS, read again before each
// dial.
//
// Logs and telemetry (none by default: nothing is recorded):
// WithSlog(*slog.Logger) for structured records, WithLogger(Logger) for
// lines (SlogLogger adapts a *slog.Logger), WithTracerProvider(tp),
// WithMeterProvider(mp), WithPropagator(p) (default W3C TraceContext and
// Baggage) and WithKVKeysInSpans().
//
// Options are validated, never replaced by a default: an invalid url or
// option value (a threshold below 1, a zero or negative wait, an empty URL, a
// nil TLS config, an unreadable nkey file, a nil option) is an error matching
// ErrInvalidOption that names what was wrong.
func NewClient(url string, opts ...Option) (*Client, error) {
	servers, err := splitServers(url)
	if err != nil {
		return nil, err
	}
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return nil, invalidOption("NewClient", "option %d is nil", i)
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := o.settleMaxBackoff(); err != nil {
		return nil, err
	}
	c := &Client{opts: o}
	if o.jsDomain != "" {
		c.domain = &jsDomain{root: c, name: o.jsDomain}
	}
	tel, err := newTelemetry(c, &o)
	if err != nil {
		return nil, err
	}
	c.tel = tel
	c.sup = newSupervisor(c, servers)
	c.snap.Store(c.sup.snapshot())
	return c, nil
}

// splitServers splits a comma-separated list of server URLs and checks each
// as nats.go will read it, so that a URL no dial can use is NewClient's
// error rather than a Connect that retries until its context ends.
func splitServers(list string) ([]string, error) {
	var servers []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if err := checkServerURL(len(servers), s); err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, invalidOption("url", "no server URL given")
	}
	return servers, nil
}

// serverSchemes are the schemes nats.go dials.
var serverSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// checkServerURL reports what nats.go would fail on in raw: a URL it cannot
// parse, a scheme it does not dial, no host, a port that is not one. Like
// nats.go, it reads a URL without a scheme as nats://. The error never shows
// a password (see RedactURL).
func checkServerURL(i int, raw string) error {
	withScheme := raw
	if !strings.Contains(raw, "://") {
		withScheme = "nats://" + raw
	}
	u, err := url.Parse(withScheme)
	if err != nil {
		// net/url's error quotes the URL whole, and one that fails to parse
		// may do so because of a character in its password: not shown.
		return invalidOption("url", "server URL %d of the list does not parse as scheme://[user[:password]@]host[:port] "+
			"(not shown, as it may hold a password; a password with reserved characters must be percent-encoded, "+
			"or given with WithUserInfo)", i+1)
	}
	shown := RedactURL(raw)
	if !serverSchemes[u.Scheme] {
		return invalidOption("url", "%q: scheme %q is not one of nats, tls, ws, wss", shown, u.Scheme)
	}
	if u.Hostname() == "" {
		return invalidOption("url", "%q: no host", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalidOption("url", "%q: port %q is not a number from 1 to 65535", shown, p)
		}
	}
	return nil
}

// base is the client c is: c itself, or the client a Domain view was made
// from.
func (c *Client) base() *Client {
	if c.root != nil {
		return c.root
	}
	return c
}

// ensureRunning starts the supervisor on the first call that needs it, so a
// client that is created and dropped unused leaves no goroutine behind.
func (c *Client) ensureRunning() {
	if c.root != nil { // a Domain view: the supervisor is its client's
		c.root.ensureRunning()
		return
	}
	if c.running.CompareAndSwap(false, true) {
		go c.sup.run()
	}
}

// Connect connects to the server, retrying failed dials with backoff until it
// succeeds or ctx ends. It returns once the server has answered on the new
// connection, so a connection the server drops at once is retried, not
// reported as connected. A permanent error (an authorization violation, a TLS
// failure) is returned at once and matches ErrPermanent. Calling Connect on a
// connected client does nothing and returns nil. After Close it returns
// ErrClosed.
func (c *Client) Connect(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	c.ensureRunning()
	return c.sup.connect(ctx)
}

// Close drains the connection (subscriptions finish the messages they hold,
// pending publishes are flushed), waits for the drain until ctx ends, stops
// the supervisor, and returns once every goroutine the client started has
// ended: a Consume handler still running (also one whose Consume was stopped
// while it ran) and the goroutines that keep consumers and watchers going
// included. When ctx ends first the connection is closed at once and ctx's
// error is returned. Close is idempotent; later calls return nil once the
// first one's work has ended. Called from inside
// a client callback, it does not wait for that callback to return.
//
// Called from inside a Subscription's message handler or a Consume handler,
// Close returns once every subscription other than the caller's has
// drained, without waiting for the calling handler (whose subscription
// drains after it returns); the client's goroutines end, and pending
// publishes are flushed, once it has returned. Called by the goroutine
// that reads a KV watcher's updates, Close returns too: watchers stop when
// the client begins to close.
//
// Close is the one call that takes a nil ctx (see "Contexts" in the package
// doc): nil stands for context.Background(), so that a deferred Close never
// leaves the client's goroutines running. The drain is then bounded by
// nats.go's drain timeout alone (nats.DrainTimeout, 30s unless set through
// WithNATSOptions).
func (c *Client) Close(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c.ensureRunning()
	caller := goroutineID()
	_, fromConsumer := c.consumers.Load(caller)
	fromHandler, err := c.sup.close(ctx, caller, fromConsumer)
	if fromHandler {
		return err
	}
	if werr := c.active.wait(ctx); err == nil {
		err = werr
	}
	return err
}

// State returns the current connection state.
func (c *Client) State() State { return c.snap.Load().state }

// Stats returns the client's counters and those of its connections.
func (c *Client) Stats() Stats {
	s := c.snap.Load()
	st := s.stats
	if s.conn != nil {
		st.add(s.conn.Stats())
	}
	st.BreakerRejections = c.rejections.Load()
	return st
}

// Publish sends data to subject. It fails at once with ErrCircuitOpen while
// the breaker is open, ErrNotConnected while there is no connection (before
// Connect, or between connections while a new one is dialled) and ErrClosed
// after Close; an invalid subject (or one too long for the server's control
// line, see MaxControlLine) or nil ctx is an ErrInvalidArgument error and a
// message over the server's limit (max_payload: the data, and the headers
// a propagator adds) matches nats.ErrMaxPayload. Neither is sent, and
// neither counts against the breaker.
func (c *Client) Publish(ctx context.Context, subject string, data []byte) error {
	if err := checkCall(ctx, subject); err != nil {
		return err
	}
	if len(subject) > wire.LongSubject {
		if err := wire.CheckPub(subject, "", len(data), c.injects()); err != nil {
			return err
		}
	}
	if c.tel != nil {
		return c.publishObserved(ctx, subject, data, nil)
	}
	s := c.snap.Load()
	if s.blocked != nil {
		return c.refused(s)
	}
	if err := s.conn.Publish(subject, data); err != nil {
		return c.sendFailed(s, "publish", subject, data, nil, err)
	}
	return nil
}

// PublishMsg sends msg, with its headers, like Publish. The headers count
// toward the server's max_payload with the data, and their size is written
// on the protocol line, so both limits are checked with them.
func (c *Client) PublishMsg(ctx context.Context, msg *nats.Msg) error {
	if msg == nil {
		return errs.InvalidArgument("nil message")
	}
	if err := checkCall(ctx, msg.Subject); err != nil {
		return err
	}
	if msg.Reply != "" {
		if err := ValidateSubject(msg.Reply); err != nil {
			return fmt.Errorf("reply %w", err)
		}
	}
	if len(msg.Subject)+len(msg.Reply) > wire.LongSubject {
		if err := wire.CheckPub(msg.Subject, msg.Reply, len(msg.Data), len(msg.Header) > 0 || c.injects()); err != nil {
			return err
		}
	}
	if c.tel != nil {
		return c.publishObserved(ctx, msg.Subject, msg.Data, msg)
	}
	s := c.snap.Load()
	if s.blocked != nil {
		return c.refused(s)
	}
	if err := s.conn.PublishMsg(msg); err != nil {
		return c.sendFailed(s, "publish", msg.Subject, msg.Data, msg, err)
	}
	return nil
}

// Request sends data to subject and waits for one reply, until ctx ends; a
// ctx without a deadline is bounded by the client's timeout. No responders
// (nats.ErrNoResponders) and timeouts are returned as they are and never
// count against the breaker.
func (c *Client) Request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	if err := checkCall(ctx, subject); err != nil {
		return nil, err
	}
	s := c.snap.Load()
	if err := c.checkRequest(s, subject, len(data), c.injects()); err != nil {
		return nil, err
	}
	if c.tel != nil {
		return c.requestObserved(ctx, s, &nats.Msg{Subject: subject, Data: data})
	}
	if s.blocked != nil {
		return nil, c.refused(s)
	}
	return c.roundTrip(ctx, s, subject, data, nil)
}

// RequestMsg sends msg, with its headers, and waits for one reply, like
// Request. msg.Reply is ignored: the reply subject is an inbox of the
// client's.
func (c *Client) RequestMsg(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if msg == nil {
		return nil, errs.InvalidArgument("nil message")
	}
	if err := checkCall(ctx, msg.Subject); err != nil {
		return nil, err
	}
	s := c.snap.Load()
	if err := c.checkRequest(s, msg.Subject, len(msg.Data), len(msg.Header) > 0 || c.injects()); err != nil {
		return nil, err
	}
	if c.tel != nil {
		return c.requestObserved(ctx, s, msg)
	}
	if s.blocked != nil {
		return nil, c.refused(s)
	}
	return c.roundTrip(ctx, s, msg.Subject, msg.Data, msg)
}

// checkRequest refuses a request to subject whose protocol line would be
// over MaxControlLine on the connection of s, which picks the reply inbox.
// Without a connection there is no inbox to measure: the call is refused
// anyway, as not connected.
func (c *Client) checkRequest(s *snapshot, subject string, size int, headers bool) error {
	if len(subject) <= wire.LongSubject || s.conn == nil {
		return nil
	}
	return wire.CheckPub(subject, s.conn.NewRespInbox(), size, headers)
}

// injects reports whether sends may gain headers they were not given: a
// propagator writes the trace context into them.
func (c *Client) injects() bool { return c.tel != nil && c.tel.prop != nil }

// roundTrip sends a request on s and waits for its reply: msg when the
// request carries headers, subject and data when it has none. The caller
// has checked the protocol line (checkRequest).
func (c *Client) roundTrip(ctx context.Context, s *snapshot, subject string, data []byte, msg *nats.Msg) (*nats.Msg, error) {
	var (
		reply *nats.Msg
		err   error
	)
	if ctx.Done() == nil {
		// A context that never ends: use nats.go's timer-based request,
		// which allocates no context of its own.
		if msg != nil {
			reply, err = s.conn.RequestMsg(msg, c.opts.timeout)
		} else {
			reply, err = s.conn.Request(subject, data, c.opts.timeout)
		}
	} else {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok {
			rctx, cancel = context.WithTimeout(ctx, c.opts.timeout)
		}
		if msg != nil {
			reply, err = s.conn.RequestMsgWithContext(rctx, msg)
		} else {
			reply, err = s.conn.RequestWithContext(rctx, subject, data)
		}
		cancel()
	}
	if err != nil {
		return nil, c.sendFailed(s, "request", subject, data, msg, err) // a timeout is not counted (classify.TransportFailure)
	}
	return reply, nil
}

// Flush waits until the server has processed everything published so far,
// until ctx ends; a ctx without a deadline is bounded by the client's timeout.
// A flush that times out on the client's own deadline counts as a transport
// failure; one ended by the caller's ctx does not.
func (c *Client) Flush(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s := c.snap.Load()
	if s.blocked != nil {
		return c.refused(s)
	}
	var err error
	if _, ok := ctx.Deadline(); ok {
		err = s.conn.FlushWithContext(ctx)
	} else if err = s.conn.FlushTimeout(c.opts.timeout); errors.Is(err, nats.ErrTimeout) {
		// The connected server itself did not answer: this timeout counts.
		err = classify.ConnectionTimeout(fmt.Errorf("%w after %v", err, c.opts.timeout))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.callFailed(s, "flush", "", err)
	}
	return nil
}

// current returns the snapshot for a guarded call, or the error the call
// fails with at once (closed, not connected, breaker open). JetStream and KV
// helpers use it as Publish does.
func (c *Client) current() (*snapshot, error) {
	if c.domain != nil {
		return c.domain.current()
	}
	s := c.snap.Load()
	if s.blocked != nil {
		return nil, c.refused(s)
	}
	return s, nil
}

// refused returns the error a call fails with at once on snapshot s, and
// counts it when the breaker refused it. It allocates nothing.
func (c *Client) refused(s *snapshot) error {
	if _, ok := s.blocked.(*CircuitOpenError); ok {
		c.rejections.Add(1)
	}
	return s.blocked
}

// checkCall rejects the caller's mistakes before anything is sent.
func checkCall(ctx context.Context, subject string) error {
	if ctx == nil {
		return errNilContext
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ValidateSubject(subject)
}

// report tells the supervisor about a failed call's error if it is a
// transport failure, without waiting (see supervisor.reportFailure).
func (c *Client) report(s *snapshot, err error) {
	if classify.TransportFailure(err) {
		c.sup.reportFailure(s.gen, err)
	}
}

// callFailed wraps a failed call's error with what was attempted, and
// reports transport failures to the supervisor.
func (c *Client) callFailed(s *snapshot, op, subject string, err error) error {
	c.report(s, err)
	if subject == "" {
		return fmt.Errorf("natsclient: %s: %w", op, err)
	}
	return fmt.Errorf("natsclient: %s %q: %w", op, subject, err)
}

// sendFailed is callFailed for a send of data with msg's headers (msg nil:
// none). A message over max_payload, which nats.go refused before sending
// it, is told apart with its size and the limit.
func (c *Client) sendFailed(s *snapshot, op, subject string, data []byte, msg *nats.Msg, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		hdr := 0
		if msg != nil {
			hdr = wire.HeaderLen(msg.Header)
		}
		return fmt.Errorf("natsclient: %s %q: %w", op, subject, overMaxPayload(len(data), hdr, s.conn.MaxPayload(), err))
	}
	return c.callFailed(s, op, subject, err)
}

// overMaxPayload says that a message of data and hdr bytes (its headers,
// which the server counts with the data) is over the server's max_payload.
func overMaxPayload(data, hdr int, limit int64, err error) error {
	if hdr == 0 {
		return fmt.Errorf("%d bytes of data exceed the server's max_payload of %d bytes: %w", data, limit, err)
	}
	return fmt.Errorf("%d bytes of data and %d of headers exceed the server's max_payload of %d bytes: %w",
		data, hdr, limit, err)
}
