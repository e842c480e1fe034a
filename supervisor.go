package natsclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// supervisor is the one goroutine that owns the connection, the breaker, the
// subscription registry and the state subscribers. Everything else talks to
// it through the Client's command channels (model: etcd-io/raft node.go).
// Its fields are touched by run and the handlers it calls, nothing else.
type supervisor struct {
	c    *Client
	opts *options

	// life is cancelled by Close; it aborts a dial in progress.
	life   context.Context
	cancel context.CancelFunc

	state   State
	breaker breaker
	lastErr error

	conn *nats.Conn
	js   jetstream.JetStream
	gen  uint64
	// everConnected is set by the first successful Connect: from then on a
	// lost connection is always dialled again, until Close.
	everConnected bool

	dialing   bool
	dialDone  chan dialResult
	probing   bool
	probeDone chan probeResult
	retryAt   time.Time // when to dial again; zero when no dial is wanted
	timer     *time.Timer

	connectWaiters []*connectCmd
	subs           map[*Subscription]struct{}
	watchers       map[*watcher]struct{}

	// Callbacks waiting to be handed to the notifier goroutine, in order.
	callbacks   []func()
	notifyc     chan func()
	finalNotify chan []func()

	closing       bool
	closeWaiters  []closeCmd
	closeDeadline <-chan struct{}
	closeErr      error
	finished      bool

	reconnects, connections uint64
	pastStats               Stats // counters of connections since replaced
}

func newSupervisor(c *Client) *supervisor {
	life, cancel := context.WithCancel(context.Background())
	s := &supervisor{
		c:           c,
		opts:        &c.opts,
		life:        life,
		cancel:      cancel,
		breaker:     newBreaker(c.opts.threshold, c.opts.reconnectWait, c.opts.maxBackoff),
		dialDone:    make(chan dialResult, 1),
		probeDone:   make(chan probeResult, 1),
		subs:        make(map[*Subscription]struct{}),
		watchers:    make(map[*watcher]struct{}),
		notifyc:     make(chan func()),
		finalNotify: make(chan []func(), 1),
	}
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	return s
}

func (s *supervisor) run() {
	go runCallbacks(s.c, s.notifyc, s.finalNotify)
	for !s.finished {
		var (
			notifyc chan func()
			next    func()
		)
		if len(s.callbacks) > 0 {
			notifyc, next = s.notifyc, s.callbacks[0]
		}
		select {
		case cmd := <-s.c.connectc:
			s.handleConnect(cmd)
		case cmd := <-s.c.cancelConnectc:
			s.handleCancelConnect(cmd.cmd)
		case cmd := <-s.c.closec:
			s.handleClose(cmd)
		case cmd := <-s.c.subscribec:
			cmd.reply <- s.handleSubscribe(cmd.sub)
		case cmd := <-s.c.unsubscribec:
			cmd.reply <- s.handleUnsubscribe(cmd.sub, cmd.drain)
		case cmd := <-s.c.watchc:
			s.handleWatch(cmd)
		case w := <-s.c.unwatchc:
			if _, ok := s.watchers[w]; ok {
				delete(s.watchers, w)
				close(w.ch)
			}
		case r := <-s.c.failc:
			if r.gen == s.gen && s.conn != nil {
				s.failure(r.err)
			}
		case ev := <-s.c.eventc:
			s.handleConnEvent(ev)
		case r := <-s.dialDone:
			s.handleDialResult(r)
		case r := <-s.probeDone:
			s.handleProbeResult(r)
		case <-s.timer.C:
			s.handleTimer()
		case notifyc <- next:
			s.callbacks[0] = nil
			s.callbacks = s.callbacks[1:]
		case <-s.closeDeadline:
			s.closeDeadline = nil
			s.closeErr = fmt.Errorf("natsclient: close: drain did not finish: %w", context.Cause(s.closeWaiters[0].ctx))
			if s.conn != nil {
				s.conn.Close()
			}
		}
		s.publish()
	}
	s.exit()
}

// exit runs once the client is closed and every connection is gone.
func (s *supervisor) exit() {
	s.timer.Stop()
	s.cancel()
	for w := range s.watchers {
		w.stop()
		close(w.ch)
	}
	if s.opts.onClosed != nil {
		s.callbacks = append(s.callbacks, s.opts.onClosed)
	}
	// finalNotify has room for this one send: the notifier runs what is left
	// and ends.
	s.finalNotify <- s.callbacks
	s.callbacks = nil
	for _, w := range s.closeWaiters {
		w.reply <- s.closeErr
	}
	close(s.c.done)
}

// runCallbacks runs user callbacks one at a time, in order, outside the
// supervisor, so that a callback may call back into the client.
func runCallbacks(c *Client, in <-chan func(), final <-chan []func()) {
	defer close(c.notifierDone)
	call := func(fn func()) {
		c.inCallback.Store(true)
		defer c.inCallback.Store(false)
		fn()
	}
	for {
		select {
		case fn := <-in:
			call(fn)
		case rest := <-final:
			for _, fn := range rest {
				call(fn)
			}
			return
		}
	}
}

// publish stores a new snapshot for the hot path. The loop only turns on an
// event, so this is not a hot path of its own.
func (s *supervisor) publish() {
	s.c.snap.Store(s.snapshot())
}

func (s *supervisor) snapshot() *snapshot {
	snap := &snapshot{
		conn:    s.conn,
		js:      s.js,
		gen:     s.gen,
		state:   s.state,
		breaker: s.breaker.state,
		stats:   s.pastStats,
	}
	snap.stats.State = s.state
	snap.stats.Breaker = s.breaker.state
	snap.stats.ConsecutiveFailures = s.breaker.failures
	snap.stats.BreakerTrips = s.breaker.trips
	snap.stats.Reconnects = s.reconnects
	snap.stats.Connections = s.connections
	snap.stats.LastError = s.lastErr
	switch {
	case s.state == StateClosed:
		snap.blocked = ErrClosed
	case s.breaker.state != BreakerClosed:
		snap.probeAt = s.breaker.openUntil
		snap.blocked = &CircuitOpenError{Cause: s.breaker.lastErr, RetryAt: s.breaker.openUntil}
	case s.conn == nil:
		snap.blocked = ErrNotConnected
	}
	return snap
}

// setState moves to a new connection state and tells the subscribers.
func (s *supervisor) setState(to State, cause error) {
	if s.state == to {
		return
	}
	from := s.state
	s.state = to
	s.opts.logf("state %s -> %s (breaker %s)", from, to, s.breaker.state)
	s.emit(from, cause)
}

// emit tells the state subscribers about a change. The snapshot is
// published first: whoever reads the event and then makes a call must see
// the state the event announced.
func (s *supervisor) emit(from State, cause error) {
	s.publish()
	ev := StateChange{From: from, To: s.state, Breaker: s.breaker.state, Err: cause, At: time.Now()}
	for w := range s.watchers {
		w.deliver(ev)
	}
}

// failure feeds a transport failure to the breaker.
func (s *supervisor) failure(err error) {
	s.lastErr = err
	if s.breaker.failure(time.Now(), err) {
		s.opts.logf("circuit breaker open after %d consecutive failures: %v", s.breaker.failures, err)
		s.emit(s.state, err)
	}
	s.schedule()
}

// connected records that the connection is up, by a dial or by nats.go's
// reconnect: the breaker closes and the state becomes Connected, announced as
// one event.
func (s *supervisor) connected() {
	breakerChanged := s.breaker.success()
	from := s.state
	s.state = StateConnected
	s.schedule()
	if breakerChanged || from != StateConnected {
		s.opts.logf("state %s -> connected (breaker closed)", from)
		s.emit(from, nil)
	}
}

// success closes the breaker after a probe of a live connection succeeded.
func (s *supervisor) success() {
	if s.breaker.success() {
		s.opts.logf("circuit breaker closed")
		s.emit(s.state, nil)
	}
}

// schedule arms the timer for the next thing the supervisor must do by
// itself: a breaker probe, or a dial retry.
func (s *supervisor) schedule() {
	s.timer.Stop()
	if s.closing {
		return
	}
	var at time.Time
	switch {
	case s.breaker.state == BreakerOpen && (s.conn != nil || s.wantsConnection()):
		at = s.breaker.openUntil
	case !s.retryAt.IsZero():
		at = s.retryAt
	default:
		return
	}
	s.timer.Reset(max(time.Until(at), 0))
}

func (s *supervisor) handleTimer() {
	if s.closing {
		return
	}
	now := time.Now()
	if (s.conn != nil || s.wantsConnection()) && s.breaker.beginProbe(now) {
		s.opts.logf("circuit breaker half-open: probing")
		s.emit(s.state, nil)
		switch {
		case s.conn == nil:
			s.retryAt = time.Time{}
			s.startDial()
		case s.conn.IsConnected():
			s.startProbe()
		}
		// While nats.go is reconnecting, its next attempt is the probe.
		return
	}
	if !s.retryAt.IsZero() && !now.Before(s.retryAt) && s.conn == nil {
		s.retryAt = time.Time{}
		s.startDial()
	}
	s.schedule()
}

// wantsConnection reports whether the supervisor should be dialling: a
// Connect is waiting, or the client was connected and lost its connection.
func (s *supervisor) wantsConnection() bool {
	return !s.closing && (len(s.connectWaiters) > 0 || s.everConnected)
}

func (s *supervisor) handleConnect(cmd *connectCmd) {
	switch {
	case s.closing:
		cmd.reply <- ErrClosed
		return
	case s.conn != nil:
		cmd.reply <- nil
		return
	}
	s.connectWaiters = append(s.connectWaiters, cmd)
	if s.state == StateDisconnected {
		s.setState(StateConnecting, nil)
	}
	if !s.dialing && s.retryAt.IsZero() && s.breaker.state == BreakerClosed {
		s.startDial()
	}
}

func (s *supervisor) handleCancelConnect(cmd *connectCmd) {
	for i, w := range s.connectWaiters {
		if w == cmd {
			s.connectWaiters = append(s.connectWaiters[:i], s.connectWaiters[i+1:]...)
			break
		}
	}
	if !s.wantsConnection() && s.conn == nil {
		// Nobody wants a connection any more: stop retrying.
		s.retryAt = time.Time{}
		s.schedule()
		s.setState(StateDisconnected, s.lastErr)
	}
}

func (s *supervisor) replyConnect(err error) {
	s.publish() // a call made right after Connect returns must see its result
	for _, w := range s.connectWaiters {
		w.reply <- err
	}
	s.connectWaiters = nil
}

// startDial dials off the loop; the result comes back on dialDone.
func (s *supervisor) startDial() {
	if s.dialing || s.closing {
		return
	}
	s.dialing = true
	opts, optErr := s.natsOptions()
	go func() {
		if optErr != nil {
			s.dialDone <- dialResult{err: optErr}
			return
		}
		nc, err := opts.Connect()
		s.dialDone <- dialResult{nc: nc, err: err}
	}()
}

func (s *supervisor) handleDialResult(r dialResult) {
	s.dialing = false
	if s.closing {
		if r.nc != nil {
			r.nc.Close()
		}
		s.checkFinished()
		return
	}
	if r.err != nil {
		s.dialFailed(r.err)
		return
	}
	if !s.wantsConnection() {
		// The Connect that asked for this gave up while we dialled.
		r.nc.Close()
		return
	}
	s.install(r.nc)
}

func (s *supervisor) dialFailed(err error) {
	err = redactError(err, s.c.servers)
	s.opts.logf("dial %s failed: %v", redactServers(s.c.servers), err)
	if isPermanent(err) {
		err = permanentError(s.c.servers, err)
		s.lastErr = err
		if !s.everConnected {
			// Retrying cannot fix it; Connect says so. Do not spin. The
			// state changes first, so Connect's caller sees it.
			s.setState(StateDisconnected, err)
			s.replyConnect(err)
			return
		}
		s.replyConnect(err)
	}
	s.failure(err)
	if !s.wantsConnection() {
		s.setState(StateDisconnected, err)
		return
	}
	if s.breaker.state == BreakerClosed {
		s.retryAt = time.Now().Add(s.opts.reconnectWait)
	}
	s.schedule()
}

// install makes nc the client's connection and re-establishes every
// subscription made through the client on it.
func (s *supervisor) install(nc *nats.Conn) {
	recovered := s.everConnected
	s.conn = nc
	s.gen++
	if js, err := jetstream.New(nc); err == nil {
		s.js = js
	} else {
		s.opts.logf("jetstream context: %v", err)
	}
	s.connections++
	s.everConnected = true
	s.retryAt = time.Time{}
	for sub := range s.subs {
		if err := sub.attach(nc); err != nil {
			s.opts.logf("resubscribe %q: %v", sub.subject, err)
		}
	}
	s.connected()
	s.replyConnect(nil)
	if recovered {
		s.reconnects++
		s.notify(s.opts.onReconnect)
	}
}

func (s *supervisor) startProbe() {
	if s.probing {
		return
	}
	s.probing = true
	nc, timeout := s.conn, s.opts.timeout
	go func() {
		s.probeDone <- probeResult{nc: nc, err: nc.FlushTimeout(timeout)}
	}()
}

func (s *supervisor) handleProbeResult(r probeResult) {
	s.probing = false
	if s.closing {
		s.checkFinished()
		return
	}
	if r.nc != s.conn {
		return
	}
	if r.err != nil {
		s.failure(fmt.Errorf("natsclient: probe flush: %w", r.err))
		return
	}
	s.success()
}

func (s *supervisor) handleConnEvent(ev connEvent) {
	if ev.nc != s.conn {
		return // a connection already replaced or being closed
	}
	switch ev.kind {
	case evDisconnected:
		if s.closing {
			return
		}
		cause := ev.err
		if cause == nil {
			cause = nats.ErrDisconnected
		}
		s.setState(StateReconnecting, cause)
		s.failure(cause)
		if fn := s.opts.onDisconnect; fn != nil {
			s.notify(func() { fn(cause) })
		}
	case evReconnectFailed:
		if !s.closing {
			s.failure(ev.err)
		}
	case evReconnected:
		if s.closing {
			return
		}
		s.connected()
		s.reconnects++
		s.notify(s.opts.onReconnect)
	case evClosed:
		s.pastStats.add(s.conn.Stats())
		cause := s.conn.LastError()
		s.conn, s.js = nil, nil
		if s.closing {
			s.checkFinished()
			return
		}
		// nats.go gave the connection up. The client does not: dial anew.
		if cause == nil {
			cause = nats.ErrConnectionClosed
		}
		s.opts.logf("nats.go gave the connection up; dialling a new one")
		s.setState(StateReconnecting, cause)
		switch s.breaker.state {
		case BreakerClosed:
			s.startDial()
		case BreakerHalfOpen:
			// nats.go's reconnect was the probe, and it failed: reopen, so
			// that the breaker's timer dials next. Left half-open, nothing
			// would ever dial again.
			s.failure(cause)
		}
		s.schedule()
	case evAsyncError:
		s.opts.logf("asynchronous error: %v", ev.err)
	}
}

func (s *supervisor) handleSubscribe(sub *Subscription) error {
	switch {
	case s.closing:
		return ErrClosed
	case !s.everConnected:
		return ErrNotConnected
	}
	if s.conn != nil {
		if err := sub.attach(s.conn); err != nil && !isTransportFailure(err) {
			return fmt.Errorf("natsclient: subscribe %q: %w", sub.subject, err)
		}
		// A transport failure here means the connection is going away; the
		// subscription is attached again on the next one.
	}
	s.subs[sub] = struct{}{}
	return nil
}

func (s *supervisor) handleUnsubscribe(sub *Subscription, drain bool) error {
	if _, ok := s.subs[sub]; !ok {
		return fmt.Errorf("natsclient: unsubscribe %q: %w", sub.subject, nats.ErrBadSubscription)
	}
	delete(s.subs, sub)
	inner := sub.inner.Load()
	if inner == nil || s.conn == nil {
		return nil
	}
	var err error
	if drain {
		err = inner.Drain()
	} else {
		err = inner.Unsubscribe()
	}
	if err != nil && !isTransportFailure(err) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("natsclient: unsubscribe %q: %w", sub.subject, err)
	}
	return nil
}

func (s *supervisor) handleWatch(cmd watchCmd) {
	if s.closing {
		close(cmd.w.ch)
		return
	}
	s.watchers[cmd.w] = struct{}{}
	w, c := cmd.w, s.c
	w.stop = context.AfterFunc(cmd.ctx, func() {
		select {
		case c.unwatchc <- w:
		case <-c.done:
		}
	})
}

func (s *supervisor) handleClose(cmd closeCmd) {
	if s.closing {
		s.closeWaiters = append(s.closeWaiters, cmd)
		return
	}
	s.closing = true
	s.closeWaiters = []closeCmd{cmd}
	s.replyConnect(ErrClosed)
	s.retryAt = time.Time{}
	s.schedule()
	s.cancel()
	s.setState(StateClosed, nil)
	if s.conn != nil {
		if cmd.ctx.Err() != nil {
			s.conn.Close()
		} else if err := s.conn.Drain(); err != nil {
			// Draining needs a live connection; without one there is
			// nothing to drain.
			s.conn.Close()
		} else {
			s.closeDeadline = cmd.ctx.Done()
		}
	}
	s.checkFinished()
}

// checkFinished ends the loop once a closing client has nothing in flight.
func (s *supervisor) checkFinished() {
	if s.closing && s.conn == nil && !s.dialing && !s.probing {
		s.finished = true
	}
}

// notify queues a user callback for the notifier goroutine.
func (s *supervisor) notify(fn func()) {
	if fn != nil {
		s.callbacks = append(s.callbacks, fn)
	}
}

// natsOptions builds the nats.go options for one dial: the client's settings,
// then the user's, then the handlers the supervisor relies on, which call any
// handler the user set through WithNATSOptions.
//
// An option that fails is the dial's error, never skipped: nats.go's
// credentials option reads its file when applied, and dropping it would dial
// without the credentials the user configured.
func (s *supervisor) natsOptions() (nats.Options, error) {
	o := nats.GetDefaultOptions()
	o.Servers = s.c.servers
	o.Name = s.opts.name
	o.MaxReconnect = s.opts.maxReconnects
	o.ReconnectWait = s.opts.reconnectWait
	o.Timeout = s.opts.timeout
	o.PingInterval = s.opts.pingInterval
	o.SkipSubjectValidation = true // ValidateSubject does it, once
	for _, opt := range s.opts.natsOptions {
		if err := opt(&o); err != nil {
			return o, &optionError{err}
		}
	}
	c := s.c
	forward := func(ev connEvent) {
		select {
		case c.eventc <- ev:
		case <-c.done:
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
	o.CustomReconnectDelayCB = c.reconnectDelay
	o.CustomDialer = &lifeDialer{life: s.life, timeout: s.opts.timeout}
	o.RetryOnFailedConnect = false
	return o, nil
}

// reconnectDelay is nats.go's wait before its next reconnect attempt: the
// reconnect wait while the breaker is closed, and the rest of the breaker's
// open interval while it is open. It runs on nats.go's goroutine and reads
// only the published snapshot.
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
			select {
			case c.failc <- failureReport{gen: snap.gen, err: fmt.Errorf("natsclient: reconnect: %w", err)}:
			default:
			}
		}
	}
	if snap.breaker == BreakerOpen {
		if d := time.Until(snap.probeAt); d > 0 {
			return d
		}
	}
	return c.opts.reconnectWait
}
