package natsclient

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The supervisor's connection lifecycle: Connect, dials, probes, nats.go's
// events, the timer and Close. What to do next is decided by the pure
// functions of decide.go; these handlers carry it out.

// everConnected reports whether a dial ever succeeded: from then on a lost
// connection is always dialled again, until Close.
func (s *supervisor) everConnected() bool { return s.connections > 0 }

// wantsConnection reports whether the supervisor should be dialling: a
// Connect is waiting, or the client was connected and lost its connection.
func (s *supervisor) wantsConnection() bool {
	return s.phase < closing && (len(s.connectWaiters) > 0 || s.everConnected())
}

func (s *supervisor) handleConnect(cmd *connectCmd) {
	if err := refusal(s.phase, s.everConnected(), cmdConnect); err != nil {
		cmd.reply <- err
		return
	}
	if s.state == StateConnected && s.breaker.state == BreakerClosed {
		cmd.reply <- nil
		return
	}
	s.connectWaiters = append(s.connectWaiters, cmd)
	if s.state == StateDisconnected {
		s.setState(StateConnecting, nil)
	}
	if s.phase == idle {
		s.planDial(time.Now(), time.Time{})
	}
}

// handleCancelConnect withdraws a Connect whose context ended.
func (s *supervisor) handleCancelConnect(cmd *connectCmd) {
	if refusal(s.phase, s.everConnected(), cmdCancelConnect) != nil {
		return // closing: Close answers every waiter
	}
	for i, w := range s.connectWaiters {
		if w == cmd {
			s.connectWaiters = append(s.connectWaiters[:i], s.connectWaiters[i+1:]...)
			break
		}
	}
	if !s.wantsConnection() && s.conn == nil {
		// Nobody wants a connection any more: stop retrying. A dial in
		// flight is closed when it returns.
		if s.phase == waiting {
			s.enter(idle, time.Time{})
		}
		s.setState(StateDisconnected, s.lastErr)
	}
}

// replyConnect answers every waiting Connect.
func (s *supervisor) replyConnect(err error) {
	s.publish() // a call made right after Connect returns must see its result
	for _, w := range s.connectWaiters {
		w.reply <- err
	}
	s.connectWaiters = nil
}

// enter moves to phase p and arms the timer for at (zero: no timer).
func (s *supervisor) enter(p phase, at time.Time) {
	s.phase = p
	s.wakeAt = at
	s.timer.Stop()
	if !at.IsZero() {
		s.timer.Reset(max(time.Until(at), 0))
	}
}

// planDial dials now or arms the timer to, as nextDial decides for a
// supervisor without a connection.
func (s *supervisor) planDial(now, earliest time.Time) {
	p, at := nextDial(&s.breaker, now, earliest, s.wantsConnection())
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
	case s.phase == closing:
		if r.nc != nil {
			r.nc.Close()
		}
		s.checkFinished()
	case r.err != nil:
		s.dialFailed(r.err)
	case !s.wantsConnection():
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
	if s.opts.logs(level) { // once per failed attempt: a fleet's down server makes many
		s.opts.log(level, what, slog.String("server", redactServers(s.servers)), errAttr(err))
	}
	if permanent {
		err = permanentError(s.servers, err)
	}
	return err, permanent
}

func (s *supervisor) dialFailed(err error) {
	err, permanent := s.dialError("dial failed", err)
	if permanent {
		s.lastErr = err
	}
	switch afterDialFailure(permanent, s.everConnected()) {
	case giveUp:
		// The state changes first, so that Connect's caller sees it.
		s.enter(idle, time.Time{})
		s.setState(StateDisconnected, err)
		s.replyConnect(err)
		return
	case tellAndRetry:
		s.replyConnect(err)
	}
	now := time.Now()
	s.failure(err)
	if !s.wantsConnection() {
		s.enter(idle, time.Time{})
		s.setState(StateDisconnected, err)
		return
	}
	s.planDial(now, now.Add(backoff.Aligned(now, backoff.Around(s.opts.reconnectWait))))
}

// install makes nc the client's connection and re-establishes every
// subscription made through the client on it.
func (s *supervisor) install(nc *nats.Conn, dialer *lifeDialer) {
	s.conn, s.connDialer = nc, dialer
	s.gen++
	if js, err := jetstream.New(nc); err == nil {
		s.js = js
	} else {
		s.opts.log(slog.LevelWarn, "no JetStream context on the new connection", errAttr(err))
	}
	s.connections++
	for sub := range s.subs {
		if err := sub.attach(nc); err != nil {
			s.opts.log(slog.LevelWarn, "resubscribe failed", errAttr(err))
			s.opts.log(slog.LevelDebug, "resubscribe failed", slog.String("subject", sub.subject), errAttr(err))
		}
	}
	s.startProbe()
}

// proven records that the server answered on the connection: the breaker
// closes, the state becomes Connected (announced with the breaker as one
// event), and the waiting Connects return, so that a call made next goes
// through.
func (s *supervisor) proven() {
	recovered := s.state == StateReconnecting
	breakerChanged := s.breaker.success()
	switch {
	case s.state != StateConnected:
		s.setState(StateConnected, nil)
	case breakerChanged:
		s.opts.log(slog.LevelInfo, "circuit breaker closed", breakerAttr(BreakerClosed), stateAttr(s.state))
		s.emit(s.state, nil)
	}
	s.replyConnect(nil)
	if recovered {
		s.reconnects++
		s.notify(s.opts.onReconnect)
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
	nc, timeout := s.conn, s.opts.timeout
	go func() {
		done <- probe(nc, timeout)
	}()
}

func (s *supervisor) handleProbeResult(r probeResult) {
	s.probeDone = nil
	if s.phase == closing {
		s.checkFinished()
		return
	}
	if s.phase != probing || r.nc != s.conn {
		return // overtaken: the connection was lost or replaced meanwhile
	}
	if r.err != nil {
		// Each failed probe counts, so a connection that never answers
		// opens the breaker.
		now := time.Now()
		s.failure(fmt.Errorf("natsclient: probe: %w", r.err))
		s.enter(connected, afterProbe(&s.breaker, now, s.opts.reconnectWait))
		return
	}
	s.enter(connected, time.Time{})
	s.proven()
}

// failure feeds a transport failure to the breaker, and arms the timer for
// the breaker's probe when it opened on a live connection.
func (s *supervisor) failure(err error) {
	s.lastErr = err
	if s.breaker.failure(time.Now(), err) {
		s.opts.log(slog.LevelWarn, "circuit breaker open", breakerAttr(BreakerOpen), stateAttr(s.state),
			slog.Int("failures", s.breaker.failures), slog.Time("probe_at", s.breaker.openUntil), errAttr(err))
		s.emit(s.state, err)
	}
	if s.phase == connected && s.breaker.state == BreakerOpen {
		s.enter(connected, s.breaker.openUntil)
	}
}

func (s *supervisor) handleTimer() {
	now := time.Now()
	action, at := onTimer(s.phase, &s.breaker, now, s.wakeAt)
	switch action {
	case timerDial:
		if s.breaker.state == BreakerHalfOpen {
			s.opts.log(slog.LevelInfo, "circuit breaker half-open: dialling", breakerAttr(BreakerHalfOpen), stateAttr(s.state))
			s.emit(s.state, nil)
		}
		s.startDial()
	case timerProbe:
		if s.breaker.state == BreakerHalfOpen {
			s.opts.log(slog.LevelInfo, "circuit breaker half-open: probing", breakerAttr(BreakerHalfOpen), stateAttr(s.state))
			s.emit(s.state, nil)
		}
		if s.conn.IsConnected() {
			s.startProbe()
		} else {
			// nats.go is reconnecting: its next attempt is the probe.
			s.enter(connected, time.Time{})
		}
	case timerRearm:
		s.enter(s.phase, at)
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
	if s.phase >= closing {
		return
	}
	switch ev.kind {
	case evDisconnected:
		cause := ev.err
		if cause == nil {
			cause = nats.ErrDisconnected
		}
		s.enter(connected, time.Time{}) // a probe in flight no longer counts
		s.setState(StateReconnecting, cause)
		s.failure(cause)
		if fn := s.opts.onDisconnect; fn != nil {
			s.notify(func() { fn(cause) })
		}
	case evReconnected:
		s.startProbe()
	case evAsyncError:
		s.opts.log(slog.LevelWarn, "asynchronous error", stateAttr(s.state), errAttr(ev.err))
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
	if r.dialer != s.connDialer || s.phase >= closing {
		r.reply <- s.opts.reconnectWait // a connection replaced or closing: nats.go's loop is ending
		return
	}
	if r.failed != nil {
		err, _ := s.dialError("reconnect failed", r.failed)
		s.breaker.beginProbe(now) // when it is due: the failed attempt was the probe
		s.failure(err)
	}
	r.reply <- backoff.Aligned(now, dialWait(s.breaker.state, s.breaker.untilProbe(now), s.opts.reconnectWait, backoff.Around))
}

// connectionClosed handles the end of the current connection: the end of a
// drain when closing, otherwise nats.go giving the connection up. The client
// does not give up: it counts the loss and dials anew, after the reconnect
// wait or the breaker's interval.
func (s *supervisor) connectionClosed() {
	s.pastStats.add(s.conn.Stats())
	cause := s.conn.LastError()
	s.conn, s.connDialer, s.js = nil, nil, nil
	if s.phase == closing {
		s.checkFinished()
		return
	}
	if cause == nil {
		cause = nats.ErrConnectionClosed
	}
	s.opts.log(slog.LevelWarn, "connection given up by nats.go; dialling a new one",
		slog.String("server", redactServers(s.servers)), errAttr(cause))
	s.setState(StateReconnecting, cause)
	now := time.Now()
	s.enter(idle, time.Time{})
	s.failure(cause)
	s.planDial(now, now.Add(backoff.Aligned(now, backoff.Around(s.opts.reconnectWait))))
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
	case s.phase == closing && fromHandler == nil:
		s.closeWaiters = append(s.closeWaiters, cmd)
		return
	case s.phase == closing:
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
	s.replyConnect(ErrClosed)
	s.cancel()
	s.setState(StateClosed, nil)
	switch onClose(s.conn != nil, ctx.Err() != nil) {
	case closeNow:
		s.conn.Close()
	case closeDrain:
		if err := s.conn.Drain(); err != nil {
			// Draining needs a live connection; without one there is
			// nothing to drain.
			s.conn.Close()
		} else {
			s.closeCtx, s.closeTimeout = ctx, ctx.Done()
		}
	}
	s.checkFinished()
}

func (s *supervisor) handleCloseTimeout() {
	s.closeTimeout = nil
	s.closeErr = fmt.Errorf("natsclient: close: drain did not finish: %w", context.Cause(s.closeCtx))
	if s.conn != nil {
		s.conn.Close()
	}
}

// checkFinished ends the loop once a closing client has nothing in flight.
func (s *supervisor) checkFinished() {
	if s.phase == closing && s.conn == nil && s.dialDone == nil && s.probeDone == nil {
		s.phase = closed
	}
}
