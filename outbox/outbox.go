package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Outbox is a durable queue of JetStream publishes in one local file, with a
// forwarder that sends the queue to the server in order. It is safe for
// concurrent use.
type Outbox struct {
	client *natsclient.Client
	st     *store
	opts   options
	log    *slog.Logger
	// salvage is what Open did with a damaged file (WithSalvage), or nil.
	salvage *Salvage

	closed  atomic.Bool
	stop    chan struct{} // closed by Close: the forwarder ends
	fwdDone chan struct{} // closed when the forwarder has ended
	cancel  context.CancelFunc
	// fileClosed is closed once the file is closed and closeErr set, so that
	// a Close that comes after one that timed out waits for the file too.
	fileClosed chan struct{}
	closeErr   error

	// wake tells the forwarder that something was queued; capacity 1, so a
	// Publish never waits on it and a burst costs one wake-up.
	wake chan struct{}
	// progress is closed and replaced each time messages leave the queue,
	// so that Flush waits for an event rather than polling.
	progress atomic.Pointer[chan struct{}]

	forwarded, deadLettered, dropped, resent, resentLate atomic.Uint64

	status atomic.Pointer[forwardStatus] // why forwarding waits; see waiting.go
	final  atomic.Pointer[snapshot]      // the file's figures as it was closed; see closed.go
}

// Stats are the outbox's figures. Pending, PendingBytes and Oldest are read
// from the file; the counters count since Open.
type Stats struct {
	// Pending is how many messages wait to be acknowledged by their stream.
	Pending int
	// PendingBytes is their stored size, what WithMaxBytes limits.
	PendingBytes int64
	// Oldest is when the oldest pending message was published; zero when
	// nothing is pending.
	Oldest time.Time
	// Forwarded counts messages acknowledged by their stream (a duplicate
	// acknowledgement included: the stream already held the message).
	Forwarded uint64
	// DeadLettered counts messages moved to the dead letters.
	DeadLettered uint64
	// Dropped counts messages deleted unsent by the DropOldest policy.
	Dropped uint64
	// Resent counts messages sent again because their acknowledgement did
	// not arrive (a lost connection, a timeout, a restart of the process).
	// The stream's duplicate window removes the copies.
	Resent uint64
	// ResentLate counts the resends made after the stream's duplicate window
	// had passed since the first send. If the first copy was stored, such a
	// resend is stored again: each one is a possible duplicate.
	ResentLate uint64
	// Waiting says why forwarding is paused while messages may be pending;
	// "" while it runs or has nothing to send. It is the client's state
	// ("the client is reconnecting", "the client's circuit breaker is
	// open") or the fault the forwarder is waiting out, retrying with
	// backoff, the head of the queue kept in place: a lost connection, a
	// missing acknowledgement, or a stream nobody can reach, such as one on
	// the hub while a leaf node's link to it is down (LastError then
	// matches natsclient.ErrUnreachable).
	Waiting string
	// LastError is the fault that last paused forwarding, nil if none has
	// since Open. It stays after forwarding resumes.
	LastError error
}

// Open opens the outbox stored at path, creating the file if it does not
// exist, and starts forwarding what it holds through client. Forwarding runs
// while the client is connected and its breaker closed, and pauses by itself
// otherwise; the client need not be connected yet. Close the outbox before
// the client.
//
// Options and their defaults: WithMaxBytes (64 MiB), WithOverflow (Reject),
// WithMaxInFlight (256), WithAckTimeout (5s), WithLogger (the client's
// logger, or slog.Default() when it has none), WithSalvage (off).
//
// A path another process holds is an error within about a second; a second
// Open of a path this process holds (by any path: symbolic links are
// resolved) is an error at once. A file that is not an outbox is an error
// naming the path; a damaged one is an error matching ErrCorrupt, naming the
// path and what was wrong. Either is left as it is; with WithSalvage, a
// damaged file is moved aside instead and what can be verified of it kept
// (see Salvaged). Open reads the structure of an existing file before
// using it, which costs about 0.4 ms per MiB of file (see "Storage" in the
// package doc). An invalid option matches natsclient.ErrInvalidOption.
func Open(client *natsclient.Client, path string, opts ...Option) (*Outbox, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: outbox.Open: nil client", natsclient.ErrInvalidArgument)
	}
	if path == "" {
		return nil, fmt.Errorf("%w: outbox.Open: empty path", natsclient.ErrInvalidArgument)
	}
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return nil, invalidOption("Open", "option %d is nil", i)
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	st, salvage, err := openStore(path, o.salvage)
	if err != nil {
		return nil, err
	}
	prevSeq, prevAt, err := st.sentMark()
	if err != nil {
		st.close()
		return nil, fmt.Errorf("outbox: open %s: %w", st.path, err)
	}
	ob := &Outbox{
		client:     client,
		st:         st,
		salvage:    salvage,
		opts:       o,
		log:        o.loggerFor(client).With("outbox", st.path),
		stop:       make(chan struct{}),
		fwdDone:    make(chan struct{}),
		fileClosed: make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
	if salvage != nil {
		ob.log.Warn("outbox: the file was damaged: moved aside, and what could be verified of it kept in a new file",
			"moved_to", salvage.MovedTo, "pending", salvage.Pending, "dead_letters", salvage.DeadLetters,
			"set_aside", salvage.SetAside, "lost", salvage.Lost, "cause", salvage.Cause)
	}
	progress := make(chan struct{})
	ob.progress.Store(&progress)
	ctx, cancel := context.WithCancel(context.Background())
	ob.cancel = cancel
	f := newForwarder(ob, ctx, client.StateChanges(ctx), prevSeq, prevAt)
	go f.run()
	return ob, nil
}

// Publish stores data for subject and returns the message's id once it is
// durable on disk. It never waits for the network and never fails because
// the server is unreachable: the forwarder sends it when it can. The id is
// the message's Nats-Msg-Id header, the same on every resend.
//
// An invalid subject or a nil ctx is an error matching
// natsclient.ErrInvalidArgument, and nothing is stored. A message that does
// not fit the disk budget matches ErrFull (with Reject, or when it is larger
// than the whole budget). After Close it returns ErrClosed.
func (ob *Outbox) Publish(ctx context.Context, subject string, data []byte) (string, error) {
	return ob.publish(ctx, subject, nil, data)
}

// PublishMsg is Publish for a message with headers, which are stored and
// sent with it. msg.Reply must be empty (the stream's acknowledgement uses
// the reply subject) and the Nats-Msg-Id header unset (the outbox sets it).
func (ob *Outbox) PublishMsg(ctx context.Context, msg *nats.Msg) (string, error) {
	if msg == nil {
		return "", fmt.Errorf("%w: outbox.PublishMsg: nil message", natsclient.ErrInvalidArgument)
	}
	if msg.Reply != "" {
		return "", fmt.Errorf("%w: outbox.PublishMsg: reply subject %q set: the stream's acknowledgement needs the reply", natsclient.ErrInvalidArgument, msg.Reply)
	}
	if msg.Header.Get(jetstream.MsgIDHeader) != "" {
		return "", fmt.Errorf("%w: outbox.PublishMsg: header %s is set: the outbox gives each message its own", natsclient.ErrInvalidArgument, jetstream.MsgIDHeader)
	}
	var h nats.Header
	if len(msg.Header) > 0 {
		h = make(nats.Header, len(msg.Header))
		for k, vs := range msg.Header {
			h[k] = append([]string(nil), vs...)
		}
	}
	return ob.publish(ctx, msg.Subject, h, msg.Data)
}

func (ob *Outbox) publish(ctx context.Context, subject string, h nats.Header, data []byte) (string, error) {
	if ctx == nil {
		return "", fmt.Errorf("%w: outbox.Publish: nil context", natsclient.ErrInvalidArgument)
	}
	if err := natsclient.ValidateSubject(subject); err != nil {
		return "", fmt.Errorf("outbox: publish: %w", err)
	}
	if ob.closed.Load() {
		return "", ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rec := &record{subject: subject, header: h, data: data, enqueued: time.Now()}
	var a admission
	err := ob.st.db.Batch(func(tx *bolt.Tx) error {
		if err := ob.refuseClosed(); err != nil {
			return err
		}
		var err error
		a, err = ob.st.admit(tx, rec, "", ob.opts.maxBytes, ob.opts.overflow)
		return err
	})
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, ErrClosed) {
			return "", ErrClosed
		}
		return "", fmt.Errorf("outbox: publish %q: store: %w", subject, err)
	}
	if a.full {
		return "", fmt.Errorf("%w: a message of %d bytes does not fit the budget of %d bytes (policy %v)",
			ErrFull, len(rec.encode()), ob.opts.maxBytes, ob.opts.overflow)
	}
	ob.noteDropped(a)
	ob.kick()
	return a.id, nil
}

// noteDropped counts and logs what DropOldest deleted to admit a message.
func (ob *Outbox) noteDropped(a admission) {
	if len(a.dropped) == 0 {
		return
	}
	ob.dropped.Add(uint64(len(a.dropped)))
	ob.log.Warn("outbox full: dropped the oldest messages", "dropped", len(a.dropped), "first_sequence", a.dropped[0])
	ob.progressed()
}

// kick wakes the forwarder without waiting.
func (ob *Outbox) kick() {
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// progressed wakes every Flush waiting for messages to leave the queue.
func (ob *Outbox) progressed() {
	next := make(chan struct{})
	close(*ob.progress.Swap(&next))
}

// Flush returns once every message published before the call has been
// acknowledged by its stream or moved to the dead letters, or with ctx's
// error when ctx ends first. After Close it returns ErrClosed.
func (ob *Outbox) Flush(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: outbox.Flush: nil context", natsclient.ErrInvalidArgument)
	}
	if ob.closed.Load() {
		return ErrClosed
	}
	sn, err := ob.st.snapshot()
	if err != nil {
		return ob.storeErr("flush", err)
	}
	target := sn.last
	for {
		wait := *ob.progress.Load()
		sn, err := ob.st.snapshot()
		if err != nil {
			return ob.storeErr("flush", err)
		}
		if sn.first == 0 || sn.first > target {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("outbox: flush: %d messages still pending: %w", sn.count, ctx.Err())
		case <-ob.stop:
			return ErrClosed
		}
	}
}

func (ob *Outbox) storeErr(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("outbox: %s: %w", op, err)
}

// Stats returns the outbox's figures. After Close, Pending, PendingBytes and
// Oldest are what the file held when it was closed.
func (ob *Outbox) Stats() Stats {
	st := Stats{
		Forwarded:    ob.forwarded.Load(),
		DeadLettered: ob.deadLettered.Load(),
		Dropped:      ob.dropped.Load(),
		Resent:       ob.resent.Load(),
		ResentLate:   ob.resentLate.Load(),
	}
	if fs := ob.status.Load(); fs != nil {
		st.Waiting, st.LastError = fs.waiting, fs.lastErr
	}
	if sn, err := ob.fileFigures(); err == nil {
		st.Pending, st.PendingBytes, st.Oldest = int(sn.count), sn.bytes, sn.oldest
	}
	return st
}

// Close stops forwarding and closes the file. Messages on the wire whose
// acknowledgement has not arrived stay pending, and the next Open sends them
// again (the stream's duplicate window removes copies). Close waits for the
// forwarder to stop and the file to be closed, or for ctx to end, whichever
// is first; after a Close whose ctx ended, the file is closed as soon as the
// forwarder has stopped. A later Close waits for that too (or for its own
// ctx), and returns nil, or the error of closing the file, once the path
// can be opened again: Close may be called any number of times.
func (ob *Outbox) Close(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: outbox.Close: nil context", natsclient.ErrInvalidArgument)
	}
	if ob.closed.CompareAndSwap(false, true) {
		close(ob.stop)
		ob.cancel()
		go ob.closeFile()
	}
	select {
	case <-ob.fileClosed:
		return ob.closeErr
	case <-ctx.Done():
		return fmt.Errorf("outbox: close: forwarder still stopping: %w", ctx.Err())
	}
}

// closeFile closes the file once the forwarder has stopped, whether or not
// a Close still waits for it.
func (ob *Outbox) closeFile() {
	<-ob.fwdDone
	if err := ob.st.close(); err != nil {
		ob.closeErr = fmt.Errorf("outbox: close %s: %w", ob.st.path, err)
	}
	close(ob.fileClosed)
}
