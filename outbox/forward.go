package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/capture"
	"github.com/c360/natsclient/internal/classify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The forwarder is one goroutine that sends the queue to JetStream.
//
// # Order across resends
//
// It keeps up to maxInFlight publishes on the wire (jetstream's
// PublishMsgAsync) and takes their acknowledgements in send order, from the
// head of the window. When the head's acknowledgement is missing (the
// connection went, the ack timed out, the server answered with a transient
// error), it does not resend that one message: it abandons the whole window
// and starts again from the first unacknowledged message, in order, each
// message with the Nats-Msg-Id it had. Why the whole window:
//
//   - One connection is an ordered byte stream, and the server takes the
//     messages of one connection, and a stream stores the messages it takes,
//     in that order. So what a stream stored of a window is a prefix of it:
//     if message k was lost, none after it on that connection was stored.
//     Resending the window from k stores the lost suffix in order.
//   - If instead k's ack alone was lost while k+1's arrived, k was stored
//     (the prefix again); its resend is a duplicate, which the stream's
//     duplicate window drops and acknowledges as such.
//   - Resending k alone after k+1 had been stored would be the one way to
//     store them out of order; the forwarder never does that.
//   - nats.go itself would resend a publish that met "no responders" after
//     a pause, behind later ones: the forwarder turns that retry off
//     (WithRetryAttempts(0)) and makes the decision itself.
//
// # A connection of its own
//
// The prefix argument needs every message of a window to travel on one
// TCP connection, and a *nats.Conn that reconnects by itself breaks that
// twice over: its reconnect buffer keeps what is published while it
// reconnects and sends it first on the next connection, while what the
// dropped one held is lost; and a publish that checked the connection just
// before a drop and a reconnect lands on the new connection, behind nothing.
// Neither can be ruled out from outside nats.go: its status check and its
// write are not one step. So the forwarder does not publish on the client's
// shared connection. Each round dials a connection of its own
// (natsclient.Client.DialConn) that never reconnects and never buffers
// (nats.NoReconnect, nats.ReconnectBufSize(-1)): when it drops, whatever
// was written to it is either stored or lost as a suffix, nothing written
// to it can reach the server later through another one, and the round ends
// and the next one dials again. The client's connection, and its reconnect
// buffer for core publishes, stay as the user configured them. The cost is
// one more connection to the server while the outbox is open.
//
// A replicated stream that loses message k in a leader change yet stores
// k+1 breaks the prefix too: the resend then stores k after k+1. Exactly
// once still holds there; only a window of one would keep order. See
// docs/design.md, "Store-and-forward".
//
// A duplicate window only covers resends within it. A message pending
// across a long pause (a process down for longer than the window while its
// last window was unacknowledged) may be stored twice; Stats.ResentLate
// counts those resends.
type forwarder struct {
	ob     *Outbox
	client *natsclient.Client
	st     *store
	log    *slog.Logger
	ctx    context.Context // ends with Close
	states <-chan natsclient.StateChange

	conn *nats.Conn          // this round's own connection; nil between rounds
	js   jetstream.JetStream // our context on conn: we own its pending acks
	lost chan struct{}       // signalled when conn has closed
	// results carries this round's answers, one per publish, in the order
	// they arrive (see outcome); early keeps those that came before the
	// answer to the window's head.
	results chan outcome
	early   map[*nats.Msg]outcome

	window   []flight  // on the wire, in send order
	opened   int       // how many may be on the wire: one until the round's first ack (see round)
	buffered []*record // read from the file, not yet sent
	next     uint64    // the last sequence read into buffered
	drained  bool      // the last read reached the end of the queue

	acked   []uint64    // acknowledged, not yet handed to the settler
	dead    []deadEntry // refused for good, not yet handed to the settler
	settler *settler

	sentHigh uint64 // the highest sequence sent since Open
	markedAt uint64 // the sent mark last written to the file
	// firstSent is when each message of an abandoned window was first sent;
	// a message in the window carries its own (flight.first), so that the
	// common case, a message sent once, costs no map entry.
	firstSent map[uint64]time.Time
	// prevSent and prevAt are the sent mark found at Open: a message at or
	// below prevSent may have been sent by an earlier process, by prevAt.
	prevSent uint64
	prevAt   time.Time

	dupWindows map[string]time.Duration   // subject → its stream's duplicate window
	findings   map[string]capture.Finding // subject → what its "no responders" meant, this round
	// faults counts the rounds ended by a fault since the last
	// acknowledgement: the pause before the next round doubles with each.
	faults int
	// waiting mirrors Stats.Waiting != "", so that an acknowledgement
	// costs no atomic load to find that there is nothing to clear.
	waiting bool

	// idHeader is the header of every message stored without one: it holds
	// only the message id, set anew for each send. One map serves them all
	// because a publish encodes the header before it returns, and nothing
	// reads a sent message's header afterwards (jetstream's retry is off).
	idHeader nats.Header
}

type flight struct {
	rec   *record
	msg   *nats.Msg // what was published: its answer names it
	sent  time.Time // this send
	first time.Time // the first send, by this process or an earlier one
}

// outcome is the server's answer to one publish, or the error that stands
// for it (the connection went, the publisher was cleaned up). jetstream's
// handlers deliver it, rather than a future per message: a future costs two
// channels and a lock per message, the handlers one channel send.
type outcome struct {
	msg *nats.Msg
	err error // nil: acknowledged
}

// Pauses between forwarding rounds after a fault; reset by an ack.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// defaultDuplicates is JetStream's default duplicate window, assumed when a
// stream's own cannot be read.
const defaultDuplicates = 2 * time.Minute

// errPaused ends a round when the client stops being usable.
var errPaused = errors.New("client not connected, or its breaker is open")

// errStorage marks a failure to read the queue from the file: not the
// network's fault, and worth an operator's attention.
var errStorage = errors.New("read the queue from the file")

// errConnectionLost ends a round when its connection has dropped.
var errConnectionLost = errors.New("forwarding connection lost")

func newForwarder(ob *Outbox, ctx context.Context, states <-chan natsclient.StateChange, prevSent uint64, prevAt time.Time) *forwarder {
	return &forwarder{
		ob:         ob,
		client:     ob.client,
		st:         ob.st,
		log:        ob.log,
		ctx:        ctx,
		states:     states,
		firstSent:  make(map[uint64]time.Time),
		prevSent:   prevSent,
		prevAt:     prevAt,
		dupWindows: make(map[string]time.Duration),
		idHeader:   nats.Header{jetstream.MsgIDHeader: []string{""}},
	}
}

func (f *forwarder) run() {
	defer close(f.ob.fwdDone)
	f.settler = startSettler(f.ob, f.log)
	defer f.shutdown()
	for f.waitUsable() {
		err := f.round()
		if f.ctx.Err() != nil {
			return
		}
		if !errors.Is(err, errPaused) {
			f.wait(err.Error(), err)
		}
		// The next round reads the queue from the file: it must not find
		// there what was acknowledged already.
		_ = f.settle(settleSynced)
		f.abandonWindow()
		if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			// Let the client find out whether the connection is alive: a
			// flush that times out counts against its breaker.
			_ = f.client.Flush(f.ctx)
		}
		pause := backoff.Doubled(minBackoff, f.faults, maxBackoff)
		if errors.Is(err, errStorage) {
			f.log.Error("outbox: forwarding stopped by the file; retrying", "err", err, "after", pause)
		}
		if !errors.Is(err, errPaused) {
			f.log.Debug("outbox: forwarding fault; resending from the first unacknowledged message", "err", err, "after", pause)
			if backoff.Sleep(f.ctx, backoff.Jitter(pause)) != nil {
				return
			}
			f.faults++
		}
	}
}

// shutdown records what was acknowledged and drops the publisher's state on
// the client's connection, so that a closed outbox leaves nothing behind.
func (f *forwarder) shutdown() {
	_ = f.settle(settleQueued)
	f.settler.stop()
	f.ob.recordFinal()
	f.hangUp()
}

// usable reports whether forwarding may run: the client is connected and its
// breaker lets calls through. The client's state says whether the server is
// worth dialling; the forwarder publishes on a connection of its own.
func (f *forwarder) usable() bool {
	if f.client.State() != natsclient.StateConnected {
		return false
	}
	_, err := f.client.JetStream()
	return err == nil
}

// dial opens this round's connection: one that never reconnects and never
// buffers (see the type's comment). Close ends a dial in progress, even to a
// hub that accepts the connection and never answers.
func (f *forwarder) dial() error {
	lost := make(chan struct{}, 1)
	nc, err := f.client.DialConnContext(f.ctx,
		nats.NoReconnect(),
		nats.ReconnectBufSize(-1),
		nats.ClosedHandler(func(*nats.Conn) {
			select {
			case lost <- struct{}{}:
			default:
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.log.Debug("outbox: forwarding connection", "err", err)
		}),
	)
	if err != nil {
		return fmt.Errorf("dial the forwarding connection: %w", err)
	}
	// No per-message ack timeout: jetstream's is a timer per message, and
	// the window's head alone can be late (see round).
	//
	// Each publish gets exactly one answer, an ack or an error, and no more
	// than maxInFlight are unanswered, so a channel of that capacity never
	// blocks the handlers, this round's or, after hangUp, the last one's.
	results := make(chan outcome, f.ob.opts.maxInFlight)
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(f.ob.opts.maxInFlight),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, msg *nats.Msg, _ *jetstream.PubAck) {
			results <- outcome{msg: msg}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, msg *nats.Msg, err error) {
			results <- outcome{msg: msg, err: err}
		}),
	)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream context on the forwarding connection: %w", err)
	}
	f.conn, f.js, f.lost, f.results = nc, js, lost, results
	f.early = make(map[*nats.Msg]outcome)
	f.dupWindows = make(map[string]time.Duration)
	return nil
}

// hangUp closes this round's connection, failing the publisher's pending
// acks and dropping its reply subscription, so that a late ack of the old
// window cannot be taken for one of the new.
func (f *forwarder) hangUp() {
	if f.js != nil {
		f.js.CleanupPublisher()
	}
	if f.conn != nil {
		f.conn.Close()
	}
	f.conn, f.js, f.lost, f.results, f.early = nil, nil, nil, nil, nil
}

// waitUsable waits until forwarding may run, following the client's state
// events. It returns false when the outbox closes.
func (f *forwarder) waitUsable() bool {
	for !f.usable() {
		f.wait(f.pausedBy(), nil)
		select {
		case _, ok := <-f.states:
			if !ok {
				f.states = nil // the client closed: wait for our own Close
			}
		case <-f.ctx.Done():
			return false
		}
	}
	return true
}

// round forwards until a fault, a pause of the client, or Close (nil).
func (f *forwarder) round() error {
	f.findings = make(map[string]capture.Finding)
	if err := f.dial(); err != nil {
		return err
	}
	// The window opens with the round's first acknowledgement. Until then
	// the stream's interest may not be on the server yet: a leaf node whose
	// link to the hub has just returned learns the hub's interest a moment
	// later, and a window sent meanwhile would meet "no responders" for its
	// first messages and be stored from a later one on (a suffix, not a
	// prefix: the resend would then store the first ones behind it). One
	// message alone cannot be overtaken; once it is acknowledged, the
	// interest is there for the rest.
	f.opened = 1
	// One timer watches for a late acknowledgement: acks come in send
	// order, so only the window's head can be the first late one. It fires
	// at most once per ackTimeout and is moved on when the head it was set
	// for has been acknowledged meanwhile.
	late := time.NewTimer(f.ob.opts.ackTimeout)
	defer late.Stop()
	for {
		if err := f.fill(); err != nil {
			return err
		}
		if len(f.window) == 0 {
			if err := f.settle(settleQueued); err != nil {
				return err
			}
			if f.waiting {
				f.going() // nothing left to send: nothing waits
			}
			select {
			case <-f.ob.wake:
				f.drained = false
			case <-f.lost:
				return errConnectionLost
			case _, ok := <-f.states:
				if !ok {
					f.states = nil
				}
				if !f.usable() {
					return errPaused
				}
			case <-f.ctx.Done():
				return nil
			}
			continue
		}
		head := f.window[0]
		// Hand acknowledgements to the settler only when the next one is not
		// already here: one transaction for a run of acks.
		select {
		case o := <-f.results:
			if err := f.answered(o); err != nil {
				return err
			}
			continue
		default:
		}
		if err := f.settle(settleIfFree); err != nil {
			return err
		}
		select {
		case o := <-f.results:
			if err := f.answered(o); err != nil {
				return err
			}
		case <-late.C:
			if waited := time.Since(head.sent); waited >= f.ob.opts.ackTimeout {
				return fmt.Errorf("no acknowledgement of %s in %v: %w", head.rec.id, waited.Round(time.Millisecond), jetstream.ErrAsyncPublishTimeout)
			}
			late.Reset(f.ob.opts.ackTimeout - time.Since(head.sent))
		case <-f.lost:
			return errConnectionLost
		case _, ok := <-f.states:
			if !ok {
				f.states = nil
			}
			if !f.usable() {
				return errPaused
			}
		case <-f.ob.wake:
			f.drained = false
		case <-f.ctx.Done():
			return nil
		}
	}
}

// fill sends queued messages until the window is full or the queue is
// empty, reading the file a page at a time: the backlog stays on disk.
func (f *forwarder) fill() error {
	limit := f.ob.opts.maxInFlight
	for len(f.window) < f.opened {
		if len(f.buffered) == 0 {
			if f.drained {
				return nil
			}
			recs, err := f.st.page(f.next, limit)
			if err != nil {
				return fmt.Errorf("%w: %w", errStorage, err)
			}
			f.drained = len(recs) < limit
			if len(recs) == 0 {
				return nil
			}
			f.buffered = recs
			f.next = recs[len(recs)-1].seq
		}
		rec := f.buffered[0]
		f.buffered = f.buffered[1:]
		if rec.corrupt != nil {
			f.setAside(rec)
			continue
		}
		if err := f.send(rec); err != nil {
			return err
		}
	}
	return nil
}

// noRetry turns jetstream's own retry of a publish off (see forwarder);
// made once, not per message.
var noRetry = jetstream.WithRetryAttempts(0)

func (f *forwarder) send(rec *record) error {
	// The connection neither reconnects nor buffers, so a publish on a
	// dropped one goes nowhere; stopping here only saves the work.
	if f.conn.Status() != nats.CONNECTED {
		return errConnectionLost
	}
	now := time.Now()
	first, sent := f.firstSent[rec.seq]
	if !sent && rec.seq <= f.prevSent {
		first, sent = f.prevAt, true
	}
	if sent {
		f.ob.resent.Add(1)
		if now.Sub(first) > f.duplicateWindow(rec.subject) {
			f.ob.resentLate.Add(1)
			f.log.Warn("outbox: resending a message after its stream's duplicate window: it may be stored twice",
				"id", rec.id, "subject", rec.subject, "first_sent", first)
		}
	} else {
		first = now
	}
	// What jetstream.WithMsgID does, without an option per message.
	header := rec.header
	if header == nil {
		header = f.idHeader
		header[jetstream.MsgIDHeader][0] = rec.id
	} else {
		header.Set(jetstream.MsgIDHeader, rec.id)
	}
	msg := &nats.Msg{Subject: rec.subject, Header: header, Data: rec.data}
	if _, err := f.js.PublishMsgAsync(msg, noRetry); err != nil {
		if classify.Unsendable(err) {
			f.deadLetter(rec, err)
			return nil
		}
		return fmt.Errorf("send %s: %w", rec.id, err)
	}
	f.sentHigh = max(f.sentHigh, rec.seq)
	f.window = append(f.window, flight{rec: rec, msg: msg, sent: now, first: first})
	return nil
}

// answered takes one answer. Answers are taken in send order, from the
// window's head: one for a later message (another stream's, which answers
// on its own schedule) waits in early until the messages before it have
// theirs.
func (f *forwarder) answered(o outcome) error {
	if o.msg != f.window[0].msg {
		f.early[o.msg] = o
		return nil
	}
	for {
		head := f.window[0]
		if o.err == nil {
			f.acknowledged(head)
		} else if err := f.refused(head, o.err); err != nil {
			return err
		}
		if len(f.window) == 0 || len(f.early) == 0 {
			return nil
		}
		var ok bool
		if o, ok = f.early[f.window[0].msg]; !ok {
			return nil
		}
		delete(f.early, o.msg)
	}
}

func (f *forwarder) acknowledged(fl flight) {
	f.window = f.window[1:]
	delete(f.firstSent, fl.rec.seq)
	f.acked = append(f.acked, fl.rec.seq)
	f.ob.forwarded.Add(1)
	f.faults = 0
	f.opened = f.ob.opts.maxInFlight
	if f.waiting {
		f.going()
	}
}

// refused handles the head's error: a permanent refusal dead-letters it and
// forwarding goes on; anything else ends the round (see the type's comment).
// "No responders" is never a refusal by itself: it is one only when the
// JetStream in reach says that no stream captures the subject and nothing
// beyond it could (capture.Lookup); a stream that cannot be reached now (a
// leaf node's link to the hub is down) is waited for, like a lost
// connection.
func (f *forwarder) refused(fl flight, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		found := f.lookup(fl.rec.subject)
		switch found.Verdict {
		case capture.Nowhere:
			err = fmt.Errorf("%s: %w", found.Explain(fl.rec.subject), err)
		case capture.Beyond, capture.NoJetStream:
			return fmt.Errorf("ack of %s: %w: %s", fl.rec.id, natsclient.ErrUnreachable, found.Explain(fl.rec.subject))
		default:
			return fmt.Errorf("ack of %s: %s: %w", fl.rec.id, found.Explain(fl.rec.subject), err)
		}
	} else if !classify.StreamRefused(err) {
		return fmt.Errorf("ack of %s: %w", fl.rec.id, err)
	}
	f.window = f.window[1:]
	f.deadLetter(fl.rec, err)
	return nil
}

func (f *forwarder) deadLetter(rec *record, err error) {
	delete(f.firstSent, rec.seq)
	f.dead = append(f.dead, deadEntry{seq: rec.seq, id: rec.id, cause: err.Error(), at: time.Now()})
	f.log.Warn("outbox: message refused for good; moved to the dead letters",
		"id", rec.id, "subject", rec.subject, "err", err)
}

// setAside moves a record that cannot be decoded to the dead letters, with
// its stored bytes as they are: it cannot be sent, and it must not stop the
// messages behind it.
func (f *forwarder) setAside(rec *record) {
	delete(f.firstSent, rec.seq)
	cause := fmt.Sprintf("%s: %v", undecodableCause, rec.corrupt)
	f.dead = append(f.dead, deadEntry{seq: rec.seq, id: rec.id, cause: cause, at: time.Now()})
	f.log.Error("outbox: a stored message cannot be decoded; moved to the dead letters, forwarding goes on",
		"id", rec.id, "sequence", rec.seq, "err", rec.corrupt)
}

// undecodableCause begins the Err of a dead letter set aside because its
// stored bytes could not be decoded.
const undecodableCause = "the stored record cannot be decoded (the file is damaged)"

// abandonWindow forgets what is on the wire and hangs up: the next round
// dials again and starts from the first message the file still holds.
func (f *forwarder) abandonWindow() {
	for _, fl := range f.window {
		f.firstSent[fl.rec.seq] = fl.first
	}
	f.hangUp()
	f.window, f.buffered, f.next, f.drained = nil, nil, 0, false
}

// lookup asks the server what "no responders" to a publish to subject
// means, once per subject and round; an answer that says nothing (Unknown)
// is asked again next time.
func (f *forwarder) lookup(subject string) capture.Finding {
	if found, ok := f.findings[subject]; ok {
		return found
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.ob.opts.ackTimeout)
	defer cancel()
	found := capture.Lookup(ctx, f.js, subject)
	if found.Verdict != capture.Unknown {
		f.findings[subject] = found
	}
	return found
}

// duplicateWindow returns the duplicate window of the stream that captures
// subject, read once per connection; JetStream's default when it cannot be
// read.
func (f *forwarder) duplicateWindow(subject string) time.Duration {
	if d, ok := f.dupWindows[subject]; ok {
		return d
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.ob.opts.ackTimeout)
	defer cancel()
	name, err := f.js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return defaultDuplicates
	}
	s, err := f.js.Stream(ctx, name)
	if err != nil {
		return defaultDuplicates
	}
	d := s.CachedInfo().Config.Duplicates
	if d <= 0 {
		d = defaultDuplicates
	}
	f.dupWindows[subject] = d
	return d
}
