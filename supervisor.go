package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// supervisor is the one goroutine that owns the connection, the breaker, the
// subscription registry and the state subscribers: the loop around the
// connection machine (connmachine.go), which decides, while the loop carries
// out the decisions on the connection, the timer and the channels (model:
// etcd-io/raft node.go around rawnode.go). Everything else talks to it
// through its methods in commands.go, which send on its channels. Its other
// fields are touched only by run and the handlers run calls.
type supervisor struct {
	c       *Client // whose options (c.opts) and snapshot (c.snap) these are
	servers []string

	// Commands from the Client's methods. Unbuffered: a caller knows its
	// command was taken, and each carries its own reply channel.
	connectc       chan *connectCmd
	cancelConnectc chan *connectCmd
	closec         chan closeCmd
	subscribec     chan subscribeCmd
	unsubscribec   chan unsubscribeCmd
	watchc         chan watchCmd
	unwatchc       chan *watcher
	// Reports from other goroutines: transport failures seen by calls
	// (buffered, never waited on: see reportFailure) and nats.go's events.
	failc  chan failureReport
	eventc chan connEvent
	// roundc carries nats.go's reconnect loop's reports, each waiting for
	// the supervisor's answer (see roundReport).
	roundc chan roundReport

	// done is closed when the loop has ended.
	done chan struct{}
	// callbacks runs the user's callbacks, queued by the loop (callbacks.go).
	callbacks *notifier

	// life is cancelled by Close; it aborts a dial in progress.
	life   context.Context
	cancel context.CancelFunc

	// m is where the connection stands and what to do next: the breaker,
	// the phase, the waiting Connects, the counters (connmachine.go).
	m connMachine

	// conn is the connection installed, nil in idle, dialling and waiting.
	conn *nats.Conn
	// connDialer is conn's dialer, by which nats.go's reconnect loop for
	// conn is told from one for a connection since replaced.
	connDialer *lifeDialer
	js         jetstream.JetStream

	// In-flight work, one channel each, nil when nothing is in flight so
	// that the loop does not listen (raft's idiom). At most one of the two is
	// set outside closing: a dial runs only without a connection and a probe
	// only with one.
	dialDone  chan dialResult
	probeDone chan probeResult
	// timer fires at m.wakeAt.
	timer *time.Timer
	// drainCtx is the first Close's ctx while the drain it began runs, nil
	// otherwise: when it ends, the connection is closed at once.
	drainCtx context.Context

	closeWaiters []closeCmd
	closeErr     error
	subs         map[*Subscription]struct{}
	watchers     map[*watcher]struct{}

	pastStats Stats // counters of connections since replaced
}

// failBuffer is how many transport failures calls may report before the
// supervisor reads them; beyond it, reports are dropped (see reportFailure).
const failBuffer = 64

func newSupervisor(c *Client, servers []string) *supervisor {
	life, cancel := context.WithCancel(context.Background())
	s := &supervisor{
		c:              c,
		servers:        servers,
		connectc:       make(chan *connectCmd),
		cancelConnectc: make(chan *connectCmd),
		closec:         make(chan closeCmd),
		subscribec:     make(chan subscribeCmd),
		unsubscribec:   make(chan unsubscribeCmd),
		watchc:         make(chan watchCmd),
		unwatchc:       make(chan *watcher),
		failc:          make(chan failureReport, failBuffer),
		eventc:         make(chan connEvent),
		roundc:         make(chan roundReport),
		done:           make(chan struct{}),
		callbacks:      newNotifier(),
		life:           life,
		cancel:         cancel,
		m:              connMachine{breaker: newBreaker(c.opts.threshold, c.opts.reconnectWait, c.opts.maxBackoff)},
		subs:           make(map[*Subscription]struct{}),
		watchers:       make(map[*watcher]struct{}),
	}
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	return s
}

// run is the supervisor's loop: every case is one handler, which replies to
// its caller itself.
func (s *supervisor) run() {
	go s.callbacks.run()
	for s.m.phase != closed {
		callbackc, next := s.callbacks.next()
		var drainDeadline <-chan struct{}
		if s.drainCtx != nil {
			drainDeadline = s.drainCtx.Done()
		}
		select {
		case cmd := <-s.connectc:
			s.handleConnect(cmd)
		case cmd := <-s.cancelConnectc:
			s.handleCancelConnect(cmd)
		case cmd := <-s.closec:
			s.handleClose(cmd)
		case cmd := <-s.subscribec:
			s.handleSubscribe(cmd)
		case cmd := <-s.unsubscribec:
			s.handleUnsubscribe(cmd)
		case cmd := <-s.watchc:
			s.handleWatch(cmd)
		case w := <-s.unwatchc:
			s.handleUnwatch(w)
		case r := <-s.failc:
			s.handleFailureReport(r)
		case ev := <-s.eventc:
			s.handleConnEvent(ev)
		case r := <-s.roundc:
			s.handleRound(r)
		case r := <-s.dialDone:
			s.handleDialResult(r)
		case r := <-s.probeDone:
			s.handleProbeResult(r)
		case <-s.timer.C:
			s.handleTimer()
		case callbackc <- next:
			s.callbacks.taken()
		case <-drainDeadline:
			s.handleDrainDeadline()
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
	// Every Close ends here, also one called from a message handler that
	// returned before the client finished: the metrics callback is
	// unregistered before the closed callback runs, so a meter provider
	// that outlives the client no longer observes it.
	s.c.tel.stop()
	s.callbacks.finish(s.c.opts.onClosed)
	for _, w := range s.closeWaiters {
		w.reply <- s.closeErr
	}
	close(s.done)
}

func (s *supervisor) handleFailureReport(r failureReport) {
	// A report about a connection since replaced, or from before Close, says
	// nothing about the present one.
	if r.gen == s.m.connections && s.conn != nil && s.m.phase < closing {
		s.failure(r.err)
	}
}

// publish stores a new snapshot for the hot path. The loop only turns on an
// event, so this is not a hot path of its own.
func (s *supervisor) publish() {
	s.c.snap.Store(s.snapshot())
}

func (s *supervisor) snapshot() *snapshot {
	m := &s.m
	state := m.state()
	snap := &snapshot{
		conn:    s.conn,
		js:      s.js,
		gen:     m.connections,
		state:   state,
		breaker: m.breaker.state,
		stats:   s.pastStats,
	}
	snap.stats.State = state
	snap.stats.Breaker = m.breaker.state
	snap.stats.ConsecutiveFailures = m.breaker.failures
	snap.stats.BreakerTrips = m.breaker.trips
	snap.stats.Reconnects = m.reconnects
	snap.stats.Connections = m.connections
	snap.stats.LastError = m.lastErr
	switch {
	case state == StateClosed:
		snap.blocked = ErrClosed
	case m.breaker.state != BreakerClosed:
		snap.blocked = &CircuitOpenError{Cause: m.breaker.lastErr, RetryAt: m.breaker.openUntil}
	case s.conn == nil && m.everConnected():
		snap.blocked = errBetweenConnections(m.lastErr)
	case s.conn == nil:
		snap.blocked = ErrNotConnected
	}
	return snap
}

// errBetweenConnections is what a call gets while the supervisor dials a new
// connection after nats.go gave the last one up. It matches ErrNotConnected:
// the call was not sent, and trying again later may succeed.
func errBetweenConnections(cause error) error {
	if cause == nil {
		return fmt.Errorf("%w: the connection was lost and a new one is being dialled", ErrNotConnected)
	}
	return fmt.Errorf("%w: the connection was lost and a new one is being dialled (last error: %v)", ErrNotConnected, cause)
}

// announced is the state last published, which is the state last announced:
// every change of the machine's state is announced (announce) before a
// snapshot shows it.
func (s *supervisor) announced() State { return s.c.snap.Load().state }

// announce tells the state subscribers that the machine's state changed, if
// it did, with cause. Closed is final: the machine never leaves it, so
// nothing is announced after it.
func (s *supervisor) announce(cause error) {
	from, to := s.announced(), s.m.state()
	if from == to {
		return
	}
	s.c.opts.log(slog.LevelInfo, "state changed", stateAttr(to), slog.String("from", from.String()), breakerAttr(s.m.breaker.state))
	s.emit(from, cause)
}

// emit tells the state subscribers about a change. The snapshot is
// published first: whoever reads the event and then makes a call must see
// the state the event announced.
func (s *supervisor) emit(from State, cause error) {
	s.publish()
	ev := StateChange{From: from, To: s.m.state(), Breaker: s.m.breaker.state, Err: cause, At: time.Now()}
	for w := range s.watchers {
		w.deliver(ev)
	}
}

// The connection's lifecycle: Connect, dials, probes, nats.go's events, the
// timer and Close. What to do next is decided by the connection machine
// (connmachine.go); these handlers carry it out.

func (s *supervisor) handleConnect(cmd *connectCmd) {
	if err := refusal(s.m.phase, s.m.everConnected(), cmdConnect); err != nil {
		cmd.reply <- err
		return
	}
	if s.m.ready() {
		cmd.reply <- nil
		return
	}
	s.m.waiters = append(s.m.waiters, cmd)
	if s.m.phase == idle {
		s.planDial(time.Now(), time.Time{})
	}
	s.announce(nil) // Connecting, unless a connection was lost or is held
}

// handleCancelConnect withdraws a Connect whose context ended.
func (s *supervisor) handleCancelConnect(cmd *connectCmd) {
	if refusal(s.m.phase, s.m.everConnected(), cmdCancelConnect) != nil {
		return // closing: Close answers every waiter
	}
	s.m.withdraw(cmd)
	if !s.m.wantsConnection() && s.conn == nil {
		// Nobody wants a connection any more: stop retrying. A dial in
		// flight is closed when it returns.
		if s.m.phase == waiting {
			s.enter(idle, time.Time{})
		}
		s.announce(s.m.lastErr) // Disconnected
	}
}

// replyConnect answers every waiting Connect.
func (s *supervisor) replyConnect(err error) {
	s.publish() // a call made right after Connect returns must see its result
	for _, w := range s.m.takeWaiters() {
		w.reply <- err
	}
}

// enter moves to phase p and arms the timer for at (zero: no timer).
func (s *supervisor) enter(p phase, at time.Time) {
	s.m.enter(p, at)
	s.timer.Stop()
	if !at.IsZero() {
		s.timer.Reset(max(time.Until(at), 0))
	}
}

// planDial dials now or arms the timer to, as nextDial decides for a
// supervisor without a connection.
func (s *supervisor) planDial(now, earliest time.Time) {
	p, at := nextDial(&s.m.breaker, now, earliest, s.m.wantsConnection())
	if p == dialling {
		s.startDial()
		return
	}
	s.enter(p, at)
}

// startDial dials off the loop; the result comes back on dialDone.
func (s *supervisor) startDial() {
	s.enter(dialling, time.Time{})
	done := make(chan dialResult, 1)
	s.dialDone = done
	opts, dialer, optErr := s.natsOptions()
	go func() {
		if optErr != nil {
			done <- dialResult{err: optErr}
			return
		}
		nc, err := opts.Connect()
		if nc != nil {
			dialer.conn.Store(nc)
		}
		done <- dialResult{nc: nc, dialer: dialer, err: err}
	}()
}

func (s *supervisor) handleDialResult(r dialResult) {
	s.dialDone = nil
	switch {
	case s.m.phase == closing:
		if r.nc != nil {
			r.nc.Close()
		}
		s.checkFinished()
	case r.err != nil:
		s.dialFailed(r.err)
	case !s.m.wantsConnection():
		// The Connect that asked for this gave up while we dialled.
		r.nc.Close()
		s.enter(idle, time.Time{})
	default:
		s.install(r.nc, r.dialer)
	}
}

// dialError redacts a failed dial's or reconnect round's error, logs it
// (an error when dialling again cannot fix it, debug otherwise) and marks
// it ErrPermanent when it is.
func (s *supervisor) dialError(what string, err error) (_ error, permanent bool) {
	err = redactError(err, s.servers)
	permanent = classify.Permanent(err)
	level := slog.LevelDebug
	if permanent {
		level = slog.LevelError
	}
	if s.c.opts.logs(level) { // once per failed attempt: a fleet's down server makes many
		s.c.opts.log(level, what, slog.String("server", redactServers(s.servers)), errAttr(err))
	}
	if permanent {
		err = permanentError(s.servers, err)
	}
	return err, permanent
}

func (s *supervisor) dialFailed(err error) {
	err, permanent := s.dialError("dial failed", err)
	if permanent {
		s.m.lastErr = err
	}
	switch afterDialFailure(permanent, s.m.everConnected()) {
	case giveUp:
		// The state changes first, so that Connect's caller sees it.
		s.enter(idle, time.Time{})
		s.announce(err) // Disconnected
		s.replyConnect(err)
		return
	case tellAndRetry:
		s.replyConnect(err)
	}
	now := time.Now()
	s.failure(err)
	if !s.m.wantsConnection() {
		s.enter(idle, time.Time{})
		s.announce(err) // Disconnected
		return
	}
	s.planDial(now, now.Add(backoff.Aligned(now, backoff.Around(s.c.opts.reconnectWait))))
}

// install makes nc the client's connection and re-establishes every
// subscription made through the client on it.
func (s *supervisor) install(nc *nats.Conn, dialer *lifeDialer) {
	s.conn, s.connDialer = nc, dialer
	s.m.installed()
	if js, err := jetstream.New(nc); err == nil {
		s.js = js
	} else {
		s.c.opts.log(slog.LevelWarn, "no JetStream context on the new connection", errAttr(err))
	}
	for sub := range s.subs {
		if err := sub.attach(nc); err != nil {
			s.c.opts.log(slog.LevelWarn, "resubscribe failed", errAttr(err))
			s.c.opts.log(slog.LevelDebug, "resubscribe failed", slog.String("subject", sub.subject), errAttr(err))
		}
	}
	s.startProbe()
}

// proven records that the server answered on the connection: the breaker
// closes, the state becomes Connected (announced with the breaker as one
// event), and the waiting Connects return, so that a call made next goes
// through.
func (s *supervisor) proven() {
	recovered, breakerChanged := s.m.proven()
	switch {
	case s.announced() != StateConnected:
		s.announce(nil)
	case breakerChanged:
		s.c.opts.log(slog.LevelInfo, "circuit breaker closed", breakerAttr(BreakerClosed), stateAttr(s.m.state()))
		s.emit(StateConnected, nil)
	}
	s.replyConnect(nil)
	if recovered {
		s.callbacks.add(s.c.opts.onReconnect)
	}
}

// startProbe runs a flush round trip on the connection off the loop; the result
// comes back on probeDone. Every connection that comes up, by a dial or by
// nats.go's reconnect, is probed before it is announced: a server that
// accepts connections and closes each at once (a protocol line it refuses, a
// limit, a proxy that resets) must keep the breaker counting, not reset it
// with every connection.
func (s *supervisor) startProbe() {
	s.enter(probing, time.Time{})
	if s.probeDone != nil {
		// A probe overtaken by a lost connection is still running on the
		// same *nats.Conn: its answer serves. Starting another would leave
		// a goroutine whose answer nobody reads.
		return
	}
	done := make(chan probeResult, 1)
	s.probeDone = done
	nc, timeout := s.conn, s.c.opts.timeout
	go func() {
		done <- probe(nc, timeout)
	}()
}

func (s *supervisor) handleProbeResult(r probeResult) {
	s.probeDone = nil
	if s.m.phase == closing {
		s.checkFinished()
		return
	}
	if s.m.phase != probing || r.nc != s.conn {
		return // overtaken: the connection was lost or replaced meanwhile
	}
	if r.err != nil {
		// Each failed probe counts, so a connection that never answers
		// opens the breaker.
		now := time.Now()
		s.failure(fmt.Errorf("natsclient: probe: %w", r.err))
		s.enter(connected, afterProbe(&s.m.breaker, now, s.c.opts.reconnectWait))
		return
	}
	s.enter(connected, time.Time{})
	s.proven()
}

// failure feeds a transport failure to the machine, announces the breaker
// opening, and arms the timer for the breaker's probe when the machine says.
func (s *supervisor) failure(err error) {
	opened, probeAt := s.m.failure(time.Now(), err)
	if opened {
		b := &s.m.breaker
		s.c.opts.log(slog.LevelWarn, "circuit breaker open", breakerAttr(BreakerOpen), stateAttr(s.m.state()),
			slog.Int("failures", b.failures), slog.Time("probe_at", b.openUntil), errAttr(err))
		s.emit(s.m.state(), err)
	}
	if !probeAt.IsZero() {
		s.enter(connected, probeAt)
	}
}

func (s *supervisor) handleTimer() {
	now := time.Now()
	action, at := onTimer(s.m.phase, &s.m.breaker, now, s.m.wakeAt)
	switch action {
	case timerDial:
		if s.m.breaker.state == BreakerHalfOpen {
			s.c.opts.log(slog.LevelInfo, "circuit breaker half-open: dialling", breakerAttr(BreakerHalfOpen), stateAttr(s.m.state()))
			s.emit(s.m.state(), nil)
		}
		s.startDial()
	case timerProbe:
		if s.m.breaker.state == BreakerHalfOpen {
			s.c.opts.log(slog.LevelInfo, "circuit breaker half-open: probing", breakerAttr(BreakerHalfOpen), stateAttr(s.m.state()))
			s.emit(s.m.state(), nil)
		}
		if s.conn.IsConnected() {
			s.startProbe()
		} else {
			// nats.go is reconnecting: its next attempt is the probe.
			s.enter(connected, time.Time{})
		}
	case timerRearm:
		s.enter(s.m.phase, at)
	}
}

func (s *supervisor) handleConnEvent(ev connEvent) {
	if ev.nc != s.conn {
		return // a connection already replaced or being closed
	}
	if ev.kind == evClosed {
		s.connectionClosed()
		return
	}
	if s.m.phase >= closing {
		return
	}
	switch ev.kind {
	case evDisconnected:
		cause := ev.err
		if cause == nil {
			cause = nats.ErrDisconnected
		}
		s.enter(connected, time.Time{}) // a probe in flight no longer counts
		s.m.lost()
		s.announce(cause) // Reconnecting
		s.failure(cause)
		if fn := s.c.opts.onDisconnect; fn != nil {
			s.callbacks.add(func() { fn(cause) })
		}
	case evReconnected:
		s.startProbe()
	case evAsyncError:
		s.c.opts.log(slog.LevelWarn, "asynchronous error", stateAttr(s.m.state()), errAttr(ev.err))
	}
}

// handleRound answers nats.go's reconnect loop before its next round (see
// roundWait): the round before failed, if r says so, and counts; an attempt
// made once the breaker's interval had passed was the breaker's probe. The
// answer is the wait until the next attempt: the breaker's probe while it is
// open, which the timer also wakes the supervisor for, so that both happen
// on the same grid point.
func (s *supervisor) handleRound(r roundReport) {
	now := time.Now()
	if r.dialer != s.connDialer || s.m.phase >= closing {
		r.reply <- s.c.opts.reconnectWait // a connection replaced or closing: nats.go's loop is ending
		return
	}
	if r.failed != nil {
		err, _ := s.dialError("reconnect failed", r.failed)
		s.m.breaker.beginProbe(now) // when it is due: the failed attempt was the probe
		s.failure(err)
	}
	r.reply <- backoff.Aligned(now, dialWait(s.m.breaker.state, s.m.breaker.untilProbe(now), s.c.opts.reconnectWait, backoff.Around))
}

// connectionClosed handles the end of the current connection: the end of a
// drain when closing, otherwise nats.go giving the connection up. The client
// does not give up: it counts the loss and dials anew, after the reconnect
// wait or the breaker's interval.
func (s *supervisor) connectionClosed() {
	s.pastStats.add(s.conn.Stats())
	cause := s.conn.LastError()
	s.conn, s.connDialer, s.js = nil, nil, nil
	if s.m.phase == closing {
		s.checkFinished()
		return
	}
	if cause == nil {
		cause = nats.ErrConnectionClosed
	}
	s.c.opts.log(slog.LevelWarn, "connection given up by nats.go; dialling a new one",
		slog.String("server", redactServers(s.servers)), errAttr(cause))
	s.m.lost()
	s.announce(cause) // Reconnecting
	now := time.Now()
	s.enter(idle, time.Time{})
	s.failure(cause)
	s.planDial(now, now.Add(backoff.Aligned(now, backoff.Around(s.c.opts.reconnectWait))))
}

func (s *supervisor) handleClose(cmd closeCmd) {
	// A Close from a message handler cannot wait for the drain, which waits
	// for that handler: it gets the other subscriptions' drains to wait
	// for, registered before the drain begins so that none is missed.
	var fromHandler *handlerClose
	for sub := range s.subs {
		if sub.deliversOn(cmd.caller) {
			fromHandler = s.othersDrained(sub)
			break
		}
	}
	if fromHandler == nil && cmd.fromConsumer {
		fromHandler = s.othersDrained(nil) // every subscription is another's
	}
	switch {
	case s.m.phase == closing && fromHandler == nil:
		s.closeWaiters = append(s.closeWaiters, cmd)
		return
	case s.m.phase == closing:
		cmd.fromHandler <- *fromHandler
		return
	case fromHandler == nil:
		s.closeWaiters = []closeCmd{cmd}
	}
	s.beginClose(cmd.ctx)
	if fromHandler != nil {
		cmd.fromHandler <- *fromHandler
	}
}

// othersDrained lists the drains a Close called from caller's handler
// waits for: those of every other subscription on the connection (all of
// them when caller is nil: a Consume handler's).
func (s *supervisor) othersDrained(caller *Subscription) *handlerClose {
	hc := &handlerClose{}
	for sub := range s.subs {
		if inner := sub.inner.Load(); sub != caller && inner != nil && s.conn != nil {
			hc.drained = append(hc.drained, inner.StatusChanged(nats.SubscriptionClosed))
		}
	}
	return hc
}

// beginClose moves to closing: Connects are answered, a dial in progress is
// aborted and the connection drains, until ctx ends.
func (s *supervisor) beginClose(ctx context.Context) {
	s.enter(closing, time.Time{})
	s.announce(nil) // Closed, before the Connects are answered: they see it
	s.replyConnect(ErrClosed)
	s.cancel()
	switch onClose(s.conn != nil, ctx.Err() != nil) {
	case closeNow:
		s.conn.Close()
	case closeDrain:
		if err := s.conn.Drain(); err != nil {
			// Draining needs a live connection; without one there is
			// nothing to drain.
			s.conn.Close()
		} else {
			s.drainCtx = ctx
		}
	}
	s.checkFinished()
}

func (s *supervisor) handleDrainDeadline() {
	s.closeErr = fmt.Errorf("natsclient: close: drain did not finish: %w", context.Cause(s.drainCtx))
	s.drainCtx = nil
	if s.conn != nil {
		s.conn.Close()
	}
}

// checkFinished ends the loop once a closing client has nothing in flight.
func (s *supervisor) checkFinished() {
	if s.m.phase == closing && s.conn == nil && s.dialDone == nil && s.probeDone == nil {
		s.m.enter(closed, time.Time{})
	}
}

// The registries: the subscriptions attached to every new connection, and
// the StateChanges subscribers told about transitions.

func (s *supervisor) handleSubscribe(cmd subscribeCmd) {
	if err := refusal(s.m.phase, s.m.everConnected(), cmdSubscribe); err != nil {
		cmd.reply <- err
		return
	}
	sub := cmd.sub
	if s.conn != nil {
		if err := sub.attach(s.conn); err != nil && !classify.TransportFailure(err) {
			cmd.reply <- fmt.Errorf("natsclient: subscribe %q: %w", sub.subject, err)
			return
		}
		// A transport failure here means the connection is going away; the
		// subscription is attached again on the next one.
	}
	s.subs[sub] = struct{}{}
	cmd.reply <- nil
}

func (s *supervisor) handleUnsubscribe(cmd unsubscribeCmd) {
	cmd.reply <- s.dropSub(cmd.sub, cmd.drain)
}

// dropSub removes sub from the registry and unsubscribes or drains it.
func (s *supervisor) dropSub(sub *Subscription, drain bool) error {
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
	if err != nil && !classify.TransportFailure(err) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("natsclient: unsubscribe %q: %w", sub.subject, err)
	}
	return nil
}

func (s *supervisor) handleWatch(cmd watchCmd) {
	if refusal(s.m.phase, s.m.everConnected(), cmdWatch) != nil {
		close(cmd.w.ch)
		return
	}
	s.watchers[cmd.w] = struct{}{}
	w, unwatchc, done := cmd.w, s.unwatchc, s.done
	w.stop = context.AfterFunc(cmd.ctx, func() {
		select {
		case unwatchc <- w:
		case <-done:
		}
	})
}

func (s *supervisor) handleUnwatch(w *watcher) {
	if _, ok := s.watchers[w]; ok {
		delete(s.watchers, w)
		close(w.ch)
	}
}
