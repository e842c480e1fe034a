package natsclient

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// phase is what the supervisor is doing. It is the one source of truth for
// the connection's lifecycle; State, the public value, is what the
// supervisor last announced and is derived from it (see supervisor_conn.go).
//
// Legal combinations, and why:
//   - idle, dialling, waiting: conn is nil. dialling is the only phase that
//     starts with a dial in flight; waiting has the timer armed for the next
//     dial (the retry wait, or the breaker's open interval).
//   - connected, probing: conn is set. nats.go may be reconnecting it
//     (State is Reconnecting then) and the breaker may be open or half-open.
//     probing has a flush round trip in flight: a connection counts as a
//     success for the breaker only once the server has answered on it, so
//     that a server that closes every new connection right after accepting
//     it keeps the breaker counting instead of resetting it each time.
//   - closing: Close began. conn may still be set (draining), and a dial or
//     a probe started earlier may still be in flight: closing ends when all
//     three are gone, never earlier, so that no goroutine or connection
//     outlives Close.
//   - closed: final. The run loop has ended; nothing moves the supervisor
//     out of it, which is why State can never leave StateClosed.
//
// A result arriving in a phase that no longer waits for it (a dial that
// finished after a Connect was withdrawn, a probe overtaken by a lost
// connection) is discarded by its handler, after the in-flight channel is
// cleared.
type phase uint8

const (
	idle phase = iota
	dialling
	waiting
	connected
	probing
	closing
	closed
)

func (p phase) String() string {
	return [...]string{"idle", "dialling", "waiting", "connected", "probing", "closing", "closed"}[p]
}

// supervisor is the one goroutine that owns the connection, the breaker, the
// subscription registry and the state subscribers. Everything else talks to
// it through its channels (model: etcd-io/raft node.go). Its other fields are
// touched only by run and the handlers run calls.
type supervisor struct {
	c       *Client
	opts    *options
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

	// done is closed when the loop has ended; notifierDone when the
	// goroutine that runs user callbacks has ended too.
	done         chan struct{}
	notifierDone chan struct{}
	// inCallback is set while a user callback runs, so that Close called from
	// inside one does not wait for the callback goroutine, which is itself.
	inCallback atomic.Bool

	// life is cancelled by Close; it aborts a dial in progress.
	life   context.Context
	cancel context.CancelFunc

	phase   phase
	state   State
	breaker breaker
	lastErr error

	conn *nats.Conn
	// connDialer is conn's dialer, by which nats.go's reconnect loop for
	// conn is told from one for a connection since replaced.
	connDialer *lifeDialer
	js         jetstream.JetStream
	gen        uint64

	// In-flight work, one channel each, nil when nothing is in flight so
	// that the loop does not listen (raft's idiom). At most one of the two is
	// set outside closing: a dial runs only without a connection and a probe
	// only with one.
	dialDone  chan dialResult
	probeDone chan probeResult
	// wakeAt is when the timer next fires: a dial in waiting, a breaker probe
	// in connected. Zero when it is stopped.
	wakeAt time.Time
	timer  *time.Timer
	// closeTimeout is the first Close's ctx.Done while a drain runs, nil
	// otherwise; closeCtx is that ctx.
	closeTimeout <-chan struct{}
	closeCtx     context.Context

	connectWaiters []*connectCmd
	closeWaiters   []closeCmd
	closeErr       error
	subs           map[*Subscription]struct{}
	watchers       map[*watcher]struct{}
	// Callbacks waiting to be handed to the notifier goroutine, in order.
	callbacks   []func()
	notifyc     chan func()
	finalNotify chan []func()

	reconnects, connections uint64
	pastStats               Stats // counters of connections since replaced
}

// failBuffer is how many transport failures calls may report before the
// supervisor reads them; beyond it, reports are dropped (see reportFailure).
const failBuffer = 64

func newSupervisor(c *Client, servers []string) *supervisor {
	life, cancel := context.WithCancel(context.Background())
	s := &supervisor{
		c:              c,
		opts:           &c.opts,
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
		notifierDone:   make(chan struct{}),
		life:           life,
		cancel:         cancel,
		breaker:        newBreaker(c.opts.threshold, c.opts.reconnectWait, c.opts.maxBackoff),
		subs:           make(map[*Subscription]struct{}),
		watchers:       make(map[*watcher]struct{}),
		notifyc:        make(chan func()),
		finalNotify:    make(chan []func(), 1),
	}
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	return s
}

// run is the supervisor's loop: every case is one handler, which replies to
// its caller itself.
func (s *supervisor) run() {
	go runCallbacks(&s.inCallback, s.notifyc, s.finalNotify, s.notifierDone)
	for s.phase != closed {
		var (
			notifyc chan func()
			next    func()
		)
		if len(s.callbacks) > 0 {
			notifyc, next = s.notifyc, s.callbacks[0]
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
		case notifyc <- next:
			s.handleCallbackTaken()
		case <-s.closeTimeout:
			s.handleCloseTimeout()
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
	close(s.done)
}

// reportFailure hands a transport failure seen outside the supervisor to it,
// without ever waiting: if the buffer is full the supervisor is already busy
// with failures, and one more adds nothing. It is the only way failures
// reach the supervisor from other goroutines.
func (s *supervisor) reportFailure(gen uint64, err error) {
	select {
	case s.failc <- failureReport{gen: gen, err: err}:
	default:
	}
}

func (s *supervisor) handleFailureReport(r failureReport) {
	// A report about a connection since replaced, or from before Close, says
	// nothing about the present one.
	if r.gen == s.gen && s.conn != nil && s.phase < closing {
		s.failure(r.err)
	}
}

func (s *supervisor) handleCallbackTaken() {
	s.callbacks[0] = nil
	s.callbacks = s.callbacks[1:]
}

// notify queues a user callback for the notifier goroutine.
func (s *supervisor) notify(fn func()) {
	if fn != nil {
		s.callbacks = append(s.callbacks, fn)
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
		snap.blocked = &CircuitOpenError{Cause: s.breaker.lastErr, RetryAt: s.breaker.openUntil}
	case s.conn == nil && s.connections > 0:
		snap.blocked = errBetweenConnections(s.lastErr)
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

// setState announces a new connection state. Closed is final: once it is
// announced nothing else is.
func (s *supervisor) setState(to State, cause error) {
	if s.state == to || s.state == StateClosed {
		return
	}
	from := s.state
	s.state = to
	s.opts.log(slog.LevelInfo, "state changed", stateAttr(to), slog.String("from", from.String()), breakerAttr(s.breaker.state))
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
