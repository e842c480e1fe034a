package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/capture"
	"github.com/c360/natsclient/internal/classify"
	"github.com/c360/natsclient/internal/errs"
	"github.com/c360/natsclient/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// JetStream and its handles.
//
// Every call here goes through the client's snapshot and breaker, as Publish
// does: while the breaker is open it fails at once with an error matching
// ErrCircuitOpen, before Connect with ErrNotConnected, after Close with
// ErrClosed. Only transport failures count against the breaker; a missing
// stream, bucket, consumer or key, a conflict and bad input never do (see
// classify.TransportFailure).
//
// The supervisor replaces the *nats.Conn when nats.go gives one up, and a
// jetstream handle made on the old connection is dead from then on. So the
// handles these methods return (streams, buckets, KVStores, consumptions)
// keep only names and rebind to the current connection when its generation
// changed: the check costs one atomic load and compare per call.

// JetStream returns the JetStream context of the client's current
// connection. It is tied to that connection: after the client had to dial a
// new one (see WithMaxReconnects) it fails, so keep the client, not the
// context, and prefer the client's own methods (CreateStream,
// PublishToStream, Consume, CreateKeyValueBucket, NewKVStore), whose handles
// follow the client to each new connection. Before Connect it returns
// ErrNotConnected.
func (c *Client) JetStream() (jetstream.JetStream, error) {
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	if s.js == nil {
		return nil, fmt.Errorf("natsclient: jetstream: no JetStream context on this connection: %w", ErrNotConnected)
	}
	return s.js, nil
}

// jsSnapshot checks a JetStream call's context and returns the snapshot it
// runs on, or the error it fails with at once.
func (c *Client) jsSnapshot(ctx context.Context) (*snapshot, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	if s.js == nil {
		return nil, fmt.Errorf("natsclient: jetstream: no JetStream context on this connection: %w", ErrNotConnected)
	}
	return s, nil
}

// bounded gives a ctx without a deadline the client's timeout, so that no
// JetStream call waits forever on a server that does not answer.
func (c *Client) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.timeout)
}

// attemptCtx bounds one request of a call that may retry: it waits at most
// the client's timeout, and at most half of what remains of ctx, so that when
// a write's acknowledgement is lost there is time left to find out whether
// the write was stored, or to send it again.
func (c *Client) attemptCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.opts.timeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return context.WithTimeout(ctx, d)
}

// jsOnce runs one JetStream API call on the current connection, bounded by
// the client's timeout when ctx has no deadline. It returns the snapshot the
// call ran on, to seed a handle with; its error names what was attempted.
func jsOnce[T any](c *Client, ctx context.Context, what string, fn func(context.Context, jetstream.JetStream) (T, error)) (T, *snapshot, error) {
	var zero T
	s, err := c.jsSnapshot(ctx)
	if err != nil {
		return zero, nil, err
	}
	bctx, cancel := c.bounded(ctx)
	defer cancel()
	v, err := fn(bctx, s.js)
	if err != nil {
		c.report(s, err)
		if uerr := c.domain.unreachable(bctx, s, err); uerr != nil {
			err = uerr
		}
		return zero, s, fmt.Errorf("natsclient: %s%s: %w", what, c.domain.label(), err)
	}
	return v, s, nil
}

// rebinder keeps a handle of type T bound to the client's current
// connection. bind returns the cached handle when the connection generation
// is unchanged, and otherwise opens a new one on the current connection.
// Two calls racing to rebind both open a handle; the later store wins, and
// both handles are valid.
type rebinder[T any] struct {
	c    *Client
	cur  atomic.Pointer[binding[T]]
	open func(ctx context.Context, js jetstream.JetStream) (T, error)
}

type binding[T any] struct {
	gen uint64
	v   T
}

func (r *rebinder[T]) bind(ctx context.Context) (*snapshot, T, error) {
	var zero T
	s, err := r.c.jsSnapshot(ctx)
	if err != nil {
		return nil, zero, err
	}
	if b := r.cur.Load(); b != nil && b.gen == s.gen {
		return s, b.v, nil
	}
	ctx, cancel := r.c.bounded(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		actx, cancelAttempt := r.c.attemptCtx(ctx)
		v, err := r.open(actx, s.js)
		cancelAttempt()
		if err == nil {
			r.cur.Store(&binding[T]{gen: s.gen, v: v})
			return s, v, nil
		}
		r.c.report(s, err)
		if uerr := r.c.domain.unreachable(ctx, s, err); uerr != nil {
			return s, zero, uerr
		}
		// Opening a handle only looks things up: one whose answer did not
		// come in time (a request the server dropped under load, seen in
		// a cluster) is asked again until ctx ends.
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return s, zero, err
		}
		if werr := backoff.Sleep(ctx, backoff.Delay(publishRetryDelay, attempt)); werr != nil {
			return s, zero, err
		}
	}
}

// cached returns the handle bound to the current connection without
// opening one; ok is false when there is none yet or no usable connection.
func (r *rebinder[T]) cached() (s *snapshot, v T, ok bool) {
	s, err := r.c.current()
	if err != nil || s.js == nil {
		return nil, v, false
	}
	if b := r.cur.Load(); b != nil && b.gen == s.gen {
		return s, b.v, true
	}
	return nil, v, false
}

// callBound runs fn on the handle bound to the current connection, and
// reports a transport failure of fn's to the breaker. Errors are returned as
// fn returned them.
func callBound[B, T any](r *rebinder[B], ctx context.Context, fn func(B) (T, error)) (T, error) {
	s, b, err := r.bind(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(b)
	if err != nil {
		r.c.report(s, err)
	}
	return v, err
}

// seed stores a handle just opened on snapshot s.
func (r *rebinder[T]) seed(s *snapshot, v T) {
	r.cur.Store(&binding[T]{gen: s.gen, v: v})
}

// CreateStream creates the stream cfg describes, or updates it when it exists
// with another configuration, and returns a handle to it. The handle follows
// the client to each new connection (consumers obtained from it do not: use
// Consume).
func (c *Client) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if err := wire.ValidateStreamName("stream", cfg.Name); err != nil {
		return nil, err
	}
	st, s, err := jsOnce(c, ctx, fmt.Sprintf("create stream %q", cfg.Name), func(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return nil, err
	}
	h := c.newStreamHandle(cfg.Name)
	h.seed(s, st)
	return h, nil
}

// Stream returns a handle to the existing stream name. A missing stream is an
// error matching jetstream.ErrStreamNotFound. The handle follows the client to
// each new connection.
func (c *Client) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	if err := wire.ValidateStreamName("stream", name); err != nil {
		return nil, err
	}
	h := c.newStreamHandle(name)
	if _, _, err := h.bind(ctx); err != nil {
		return nil, fmt.Errorf("natsclient: stream %q%s: %w", name, c.domain.label(), err)
	}
	return h, nil
}

// DeleteStream deletes the stream name and its messages. A missing stream is
// an error matching jetstream.ErrStreamNotFound.
func (c *Client) DeleteStream(ctx context.Context, name string) error {
	if err := wire.ValidateStreamName("stream", name); err != nil {
		return err
	}
	_, _, err := jsOnce(c, ctx, fmt.Sprintf("delete stream %q", name), func(ctx context.Context, js jetstream.JetStream) (struct{}, error) {
		return struct{}{}, js.DeleteStream(ctx, name)
	})
	return err
}

// PublishToStream publishes data to subject, which a stream must capture, and
// waits for the stream's acknowledgement until ctx ends (a ctx without a
// deadline is bounded by the client's timeout).
//
// A publish whose acknowledgement does not arrive (a timeout, a lost
// connection) is sent again, with backoff, until ctx ends. Every message
// carries a message ID (the Nats-Msg-Id header): the one given with
// jetstream.WithMsgID, or a random one. A retry sends the same ID, so the
// stream stores the message once however many times it was sent, as long as
// the retries fall within the stream's duplicate window (2 minutes by
// default). The PubAck of a retry that found the message already stored has
// Duplicate set. An error the server answered with (a failed expectation, a
// message over the stream's limit) is returned at once. A publish nobody
// received (no responders) asks the server's JetStream which stream captures
// subject. If one does, its leader is being elected and the publish is sent
// again until ctx ends. If none does and that JetStream has no domain (it is
// the only one in reach), the error matches jetstream.ErrNoStreamResponse
// and says "no stream captures subject". If none does and it has a domain,
// as a leaf node's JetStream has, the stream may be beyond a leaf link that
// is down (on the hub): the error matches ErrUnreachable. Either comes
// within about a second.
// An error names the message ID: publishing again with jetstream.WithMsgID
// and that ID, within the duplicate window, cannot store the message twice.
func (c *Client) PublishToStream(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return c.PublishMsgToStream(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}, opts...)
}

// PublishMsgToStream is PublishToStream for a message with headers of its
// own. msg gains a Nats-Msg-Id header if it has none (and, with tracing,
// the trace context headers); msg.Reply is ignored.
//
// A message whose protocol line would be over the server's control-line
// limit (see MaxControlLine; a stream publish is a request, with an inbox
// for the reply, and always carries headers) is an ErrInvalidArgument
// error, and one whose data and headers are over the server's max_payload
// matches nats.ErrMaxPayload. Neither is sent, and neither counts against
// the breaker.
func (c *Client) PublishMsgToStream(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if msg == nil {
		return nil, errs.InvalidArgument("publish to stream: nil message")
	}
	if err := checkCall(ctx, msg.Subject); err != nil {
		return nil, err
	}
	for i, opt := range opts {
		if opt == nil {
			return nil, errs.InvalidArgument("publish to stream %q: option %d is nil", msg.Subject, i)
		}
	}
	root := c
	if c.root != nil {
		root = c.root
	}
	if err := checkStreamPub(root.snap.Load(), msg); err != nil {
		return nil, err // before the span: a refused message is not an operation
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	if msg.Header.Get(jetstream.MsgIDHeader) == "" {
		msg.Header.Set(jetstream.MsgIDHeader, wire.NewMsgID())
	}
	t := c.tel
	if t == nil {
		return c.publishToStream(ctx, msg, opts)
	}
	op := t.begin(ctx, opSend, sendSpanName(msg.Subject), msg.Subject, len(msg.Data), trace.SpanKindProducer, true,
		attribute.String("messaging.message.id", msg.Header.Get(jetstream.MsgIDHeader)))
	t.inject(op.ctx, msg)
	ack, err := c.publishToStream(op.ctx, msg, opts)
	t.end(op, err)
	return ack, err
}

// publishToStream sends msg until the stream acknowledges it (see
// PublishToStream).
func (c *Client) publishToStream(ctx context.Context, msg *nats.Msg, opts []jetstream.PublishOpt) (*jetstream.PubAck, error) {
	subject := msg.Subject
	if _, err := c.jsSnapshot(ctx); err != nil {
		return nil, fmt.Errorf("natsclient: publish to stream %q: %w", subject, err) // fail fast
	}
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	failed := func(attempt int, err error) error {
		return fmt.Errorf("natsclient: publish to stream %q%s (message ID %s, attempts: %d): %w",
			subject, c.domain.label(), msg.Header.Get(jetstream.MsgIDHeader), attempt, err)
	}
	for attempt := 1; ; attempt++ {
		s, err := c.jsSnapshot(ctx)
		if err == nil {
			// The options set their headers on msg (WithMsgID replaces
			// ours), the same ones on every attempt.
			if err := checkStreamPub(s, msg); err != nil {
				return nil, err // a connection dialled since the first check
			}
			actx, cancelAttempt := c.attemptCtx(ctx)
			var ack *jetstream.PubAck
			ack, err = s.js.PublishMsg(actx, msg, opts...)
			cancelAttempt()
			if err == nil {
				return ack, nil
			}
			if errors.Is(err, nats.ErrMaxPayload) {
				return nil, failed(attempt, overMaxPayload(len(msg.Data), wire.HeaderLen(msg.Header), s.conn.MaxPayload(), err))
			}
			c.report(s, err)
			if classify.NoResponders(err) && ctx.Err() == nil {
				if ferr := c.noStreamAnswered(ctx, s, subject, err); ferr != nil {
					return nil, failed(attempt, ferr)
				}
			}
		}
		if !classify.Transient(err) || ctx.Err() != nil {
			return nil, failed(attempt, err)
		}
		c.opts.log(slog.LevelDebug, "publish to stream: no acknowledgement; sending again", slog.String("subject", subject),
			attemptAttr(attempt), slog.String("msg_id", msg.Header.Get(jetstream.MsgIDHeader)), errAttr(err))
		if werr := backoff.Sleep(ctx, backoff.Delay(publishRetryDelay, attempt)); werr != nil {
			return nil, failed(attempt, fmt.Errorf("%w; then %w", err, werr))
		}
	}
}

// checkStreamPub refuses a publish to a stream whose HPUB line would be over
// MaxControlLine on the connection of s: the reply subject is an inbox of
// that connection, and JetStream's publish options may add headers as it is
// sent (see wire.PubLineLen). Without a connection there is nothing to measure:
// the publish is refused anyway, as not connected.
func checkStreamPub(s *snapshot, msg *nats.Msg) error {
	if len(msg.Subject) <= wire.LongSubject || s.conn == nil {
		return nil
	}
	return wire.CheckPub(msg.Subject, s.conn.NewRespInbox(), len(msg.Data), true)
}

// noStreamAnswered is asked when a publish to subject found no responders.
// It asks the server what that means (capture.Lookup, the rule the outbox
// follows too) and returns the error that ends the call when the answer is
// known: no stream captures the subject, said by the only JetStream in
// reach (an error matching jetstream.ErrNoStreamResponse), or the stream
// cannot be reached, as on a leaf node whose link to the hub is down (an
// *unreachableError). It returns nil when the publish is worth sending
// again: a stream captures the subject and its leader is being elected, the
// question got no answer, or nobody answers JetStream's API in the default
// domain (JetStream not up yet after a restart).
func (c *Client) noStreamAnswered(ctx context.Context, s *snapshot, subject string, err error) error {
	actx, cancel := c.attemptCtx(ctx)
	defer cancel()
	found := capture.Lookup(actx, s.js, subject)
	switch found.Verdict {
	case capture.Nowhere:
		return fmt.Errorf("%s: %w", found.Explain(subject), err)
	case capture.Beyond:
		return &unreachableError{what: fmt.Sprintf("a stream capturing subject %q (none in JetStream domain %q)", subject, found.Domain), cause: err}
	case capture.NoJetStream:
		if c.domain != nil && c.domain.name != "" {
			return &unreachableError{what: fmt.Sprintf("JetStream domain %q", c.domain.name), cause: err}
		}
	}
	return nil
}

// publishRetryDelay is PublishToStream's first wait before sending a message
// again; it doubles with each retry, with jitter.
const publishRetryDelay = 50 * time.Millisecond

// kvStreamName is the name of the stream behind bucket.
func kvStreamName(bucket string) string { return "KV_" + bucket }
