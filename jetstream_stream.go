package natsclient

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamHandle is the jetstream.Stream the client hands out. It keeps the
// stream's name and rebinds to the current connection when the client dialled
// a new one, so a handle a user holds never goes stale. Every method reports
// transport failures to the breaker and returns jetstream's errors as they
// are. Consumers obtained from it are jetstream's own and tied to the
// connection they were made on; Client.Consume is the one that follows the
// client.
type streamHandle struct {
	name string
	rebinder[jetstream.Stream]
}

var _ jetstream.Stream = (*streamHandle)(nil)

func (c *Client) newStreamHandle(name string) *streamHandle {
	h := &streamHandle{name: name}
	h.c = c
	h.open = func(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
		return js.Stream(ctx, name)
	}
	return h
}

// streamCall runs fn on the stream bound to the current connection.
func streamCall[T any](h *streamHandle, ctx context.Context, fn func(jetstream.Stream) (T, error)) (T, error) {
	return callBound(&h.rebinder, ctx, fn)
}

func (h *streamHandle) streamErr(ctx context.Context, fn func(jetstream.Stream) error) error {
	_, err := streamCall(h, ctx, func(st jetstream.Stream) (struct{}, error) { return struct{}{}, fn(st) })
	return err
}

func (h *streamHandle) Info(ctx context.Context, opts ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.StreamInfo, error) { return st.Info(ctx, opts...) })
}

// CachedInfo returns the info cached by the last call that fetched it, on
// whichever connection; nil before the handle was first bound.
func (h *streamHandle) CachedInfo() *jetstream.StreamInfo {
	if b := h.cur.Load(); b != nil {
		return b.v.CachedInfo()
	}
	return nil
}

func (h *streamHandle) Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error {
	return h.streamErr(ctx, func(st jetstream.Stream) error { return st.Purge(ctx, opts...) })
}

func (h *streamHandle) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.RawStreamMsg, error) { return st.GetMsg(ctx, seq, opts...) })
}

func (h *streamHandle) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return st.GetLastMsgForSubject(ctx, subject)
	})
}

func (h *streamHandle) DeleteMsg(ctx context.Context, seq uint64) error {
	return h.streamErr(ctx, func(st jetstream.Stream) error { return st.DeleteMsg(ctx, seq) })
}

func (h *streamHandle) SecureDeleteMsg(ctx context.Context, seq uint64) error {
	return h.streamErr(ctx, func(st jetstream.Stream) error { return st.SecureDeleteMsg(ctx, seq) })
}

func (h *streamHandle) CreateOrUpdateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.Consumer, error) { return st.CreateOrUpdateConsumer(ctx, cfg) })
}

func (h *streamHandle) CreateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.Consumer, error) { return st.CreateConsumer(ctx, cfg) })
}

func (h *streamHandle) UpdateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.Consumer, error) { return st.UpdateConsumer(ctx, cfg) })
}

func (h *streamHandle) OrderedConsumer(ctx context.Context, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.Consumer, error) { return st.OrderedConsumer(ctx, cfg) })
}

func (h *streamHandle) Consumer(ctx context.Context, consumer string) (jetstream.Consumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.Consumer, error) { return st.Consumer(ctx, consumer) })
}

func (h *streamHandle) DeleteConsumer(ctx context.Context, consumer string) error {
	return h.streamErr(ctx, func(st jetstream.Stream) error { return st.DeleteConsumer(ctx, consumer) })
}

func (h *streamHandle) PauseConsumer(ctx context.Context, consumer string, pauseUntil time.Time) (*jetstream.ConsumerPauseResponse, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.ConsumerPauseResponse, error) {
		return st.PauseConsumer(ctx, consumer, pauseUntil)
	})
}

func (h *streamHandle) ResumeConsumer(ctx context.Context, consumer string) (*jetstream.ConsumerPauseResponse, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.ConsumerPauseResponse, error) {
		return st.ResumeConsumer(ctx, consumer)
	})
}

// ListConsumers lists the stream's consumers; when the stream cannot be
// reached the lister yields nothing and its Err says why.
func (h *streamHandle) ListConsumers(ctx context.Context) jetstream.ConsumerInfoLister {
	_, st, err := h.bind(ctx)
	if err != nil {
		return failedLister{err: err}
	}
	return st.ListConsumers(ctx)
}

// ConsumerNames lists the stream's consumer names; when the stream cannot be
// reached the lister yields nothing and its Err says why.
func (h *streamHandle) ConsumerNames(ctx context.Context) jetstream.ConsumerNameLister {
	_, st, err := h.bind(ctx)
	if err != nil {
		return failedLister{err: err}
	}
	return st.ConsumerNames(ctx)
}

func (h *streamHandle) UnpinConsumer(ctx context.Context, consumer string, group string) error {
	return h.streamErr(ctx, func(st jetstream.Stream) error { return st.UnpinConsumer(ctx, consumer, group) })
}

func (h *streamHandle) ResetConsumer(ctx context.Context, consumer string) (*jetstream.ConsumerResetResponse, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.ConsumerResetResponse, error) {
		return st.ResetConsumer(ctx, consumer)
	})
}

func (h *streamHandle) ResetConsumerToSequence(ctx context.Context, consumer string, seq uint64) (*jetstream.ConsumerResetResponse, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (*jetstream.ConsumerResetResponse, error) {
		return st.ResetConsumerToSequence(ctx, consumer, seq)
	})
}

func (h *streamHandle) CreateOrUpdatePushConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.PushConsumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.PushConsumer, error) {
		return st.CreateOrUpdatePushConsumer(ctx, cfg)
	})
}

func (h *streamHandle) CreatePushConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.PushConsumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.PushConsumer, error) { return st.CreatePushConsumer(ctx, cfg) })
}

func (h *streamHandle) UpdatePushConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.PushConsumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.PushConsumer, error) { return st.UpdatePushConsumer(ctx, cfg) })
}

func (h *streamHandle) PushConsumer(ctx context.Context, consumer string) (jetstream.PushConsumer, error) {
	return streamCall(h, ctx, func(st jetstream.Stream) (jetstream.PushConsumer, error) { return st.PushConsumer(ctx, consumer) })
}

// failedLister is a lister for a stream that could not be reached: its
// channels are closed and Err says why.
type failedLister struct{ err error }

func (l failedLister) Info() <-chan *jetstream.ConsumerInfo {
	ch := make(chan *jetstream.ConsumerInfo)
	close(ch)
	return ch
}

func (l failedLister) Name() <-chan string {
	ch := make(chan string)
	close(ch)
	return ch
}

func (l failedLister) Err() error { return l.err }
