package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestForwardsInOrderExactlyOnce(t *testing.T) {
	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, outboxPath(t))
	want := publishN(t, ob, subjectPfx+"a", "m", 300)
	flush(t, ob)
	checkStream(t, tc.URL, streamName, want)
	st := ob.Stats()
	if st.Pending != 0 || st.PendingBytes != 0 || !st.Oldest.IsZero() || st.Forwarded != 300 {
		t.Errorf("stats after flush: %+v, want nothing pending and 300 forwarded", st)
	}
}

func TestPublishMsgKeepsHeaders(t *testing.T) {
	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, outboxPath(t))
	msg := nats.NewMsg(subjectPfx + "h")
	msg.Data = []byte("with headers")
	msg.Header.Add("Trace", "abc")
	msg.Header.Add("Multi", "1")
	msg.Header.Add("Multi", "2")
	id, err := ob.PublishMsg(natstest.Context(t, testTimeout), msg)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, ob)
	got := streamMsgs(t, tc.URL, streamName)
	if len(got) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(got))
	}
	h := got[0].Header
	if h.Get("Trace") != "abc" || len(h.Values("Multi")) != 2 || h.Get(jetstream.MsgIDHeader) != id {
		t.Errorf("headers %v, want Trace, two Multi and Nats-Msg-Id %s", h, id)
	}
}

// While the server is down and the breaker open, Publish still returns at
// once, and what it stored arrives in order once the server is back.
func TestPublishDuringOutage(t *testing.T) {
	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, outboxPath(t))
	events := tc.Client.StateChanges(natstest.Context(t, testTimeout))
	tc.Server.Stop()
	natstest.Await(t, events, waitTimeout, "breaker open", func(ev natsclient.StateChange) bool { return ev.Breaker == natsclient.BreakerOpen })
	if _, err := tc.Client.PublishToStream(natstest.Context(t, testTimeout), subjectPfx+"x", nil); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("PublishToStream with the breaker open: %v, want ErrCircuitOpen (the premise of this test)", err)
	}
	want := publishN(t, ob, subjectPfx+"a", "down", 200)
	if st := ob.Stats(); st.Pending != 200 || st.Oldest.IsZero() {
		t.Fatalf("stats while down: %+v, want 200 pending", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := ob.Flush(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush while down: %v, want the deadline", err)
	}
	tc.Server.Start()
	flush(t, ob)
	checkStream(t, tc.URL, streamName, want)
}

func TestBadInputIsRefusedAndNotStored(t *testing.T) {
	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, outboxPath(t))
	ctx := natstest.Context(t, testTimeout)
	withID := nats.NewMsg(subjectPfx + "a")
	withID.Header.Set(jetstream.MsgIDHeader, "mine")
	cases := []struct {
		name string
		call func() (string, error)
	}{
		{"empty subject", func() (string, error) { return ob.Publish(ctx, "", []byte("x")) }},
		{"wildcard", func() (string, error) { return ob.Publish(ctx, "out.*", []byte("x")) }},
		{"space", func() (string, error) { return ob.Publish(ctx, "out. a", []byte("x")) }},
		{"empty token", func() (string, error) { return ob.Publish(ctx, "out..a", []byte("x")) }},
		{"nil context", func() (string, error) { return ob.Publish(nil, "out.a", []byte("x")) }}, //nolint:staticcheck // the point
		{"nil message", func() (string, error) { return ob.PublishMsg(ctx, nil) }},
		{"reply set", func() (string, error) { return ob.PublishMsg(ctx, &nats.Msg{Subject: "out.a", Reply: "r"}) }},
		{"msg id set", func() (string, error) { return ob.PublishMsg(ctx, withID) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := c.call()
			if !errors.Is(err, natsclient.ErrInvalidArgument) || id != "" {
				t.Fatalf("got (%q, %v), want an ErrInvalidArgument error", id, err)
			}
		})
	}
	if st := ob.Stats(); st.Pending != 0 {
		t.Errorf("after bad input %d messages are pending, want 0", st.Pending)
	}
	for _, opt := range []outbox.Option{outbox.WithMaxBytes(0), outbox.WithMaxInFlight(0), outbox.WithOverflow(7), outbox.WithAckTimeout(0), outbox.WithLogger(nil)} {
		if _, err := outbox.Open(tc.Client, outboxPath(t), opt); !errors.Is(err, natsclient.ErrInvalidOption) {
			t.Errorf("Open with a bad option: %v, want ErrInvalidOption", err)
		}
	}
}

func TestReopenAfterClose(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	tc.Server.Stop()
	ob, err := outbox.Open(tc.Client, path)
	if err != nil {
		t.Fatal(err)
	}
	want := publishN(t, ob, subjectPfx+"a", "first", 100)
	closeOutbox(t, ob)
	if _, err := ob.Publish(natstest.Context(t, testTimeout), subjectPfx+"a", nil); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := ob.Flush(natstest.Context(t, testTimeout)); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := ob.Close(natstest.Context(t, testTimeout)); err != nil {
		t.Errorf("second Close: %v", err)
	}

	ob = openOutbox(t, tc.Client, path)
	if st := ob.Stats(); st.Pending != 100 {
		t.Fatalf("reopened outbox holds %d pending, want 100", st.Pending)
	}
	want = append(want, publishN(t, ob, subjectPfx+"a", "second", 100)...)
	tc.Server.Start()
	flush(t, ob)
	checkStream(t, tc.URL, streamName, want)
}

// Close while a whole window is on the wire, unacknowledged: nothing is
// lost, and the next Open sends the window again without storing it twice.
func TestCloseWithMessagesInFlight(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	const window = 512
	// The server stores what it gets, the client hears no acknowledgement;
	// a subscriber straight to the server sees the window arrive.
	seen := subscribeDirect(t, tc.Server.DirectURL(), 4*window)
	ob, err := outbox.Open(tc.Client, path, outbox.WithMaxInFlight(window))
	if err != nil {
		t.Fatal(err)
	}
	warmUp(t, tc.Client, ob)
	tc.Server.FreezeReplies()
	want := publishConcurrently(t, ob, 8, 250)
	for range window {
		natstest.Await(t, seen, waitTimeout, "a message of the window on the server", nil)
	}
	if st := ob.Stats(); st.Forwarded != 1 || st.Pending != 2000 {
		t.Fatalf("stats with the replies frozen: %+v, want 2000 pending, only the warm-up forwarded", st)
	}
	closeOutbox(t, ob)
	tc.Server.Thaw()

	ob = openOutbox(t, tc.Client, path)
	flush(t, ob)
	checkInterleaved(t, tc.URL, streamName, want)
	if st := ob.Stats(); st.Resent < window {
		t.Errorf("after reopening: %d resends, want at least the %d messages of the window (stats %+v)", st.Resent, window, st)
	}
}

// publishConcurrently publishes n messages from each of g goroutines and
// returns what each goroutine's Publish calls returned, in call order.
func publishConcurrently(t testing.TB, ob *outbox.Outbox, g, n int) [][]sent {
	return publishConcurrentlyFrom(t, ob, g, 0, n)
}

// publishConcurrentlyFrom is publishConcurrently with each goroutine's
// message indices starting at from.
func publishConcurrentlyFrom(t testing.TB, ob *outbox.Outbox, g, from, n int) [][]sent {
	t.Helper()
	out := make([][]sent, g)
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for i := range g {
		wg.Go(func() {
			for j := from; j < from+n; j++ {
				data := pubData(i, j)
				id, err := ob.Publish(context.Background(), subjectPfx+"c", []byte(data))
				if err != nil {
					errs <- err
					return
				}
				out[i] = append(out[i], sent{id: id, data: data})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	return out
}
