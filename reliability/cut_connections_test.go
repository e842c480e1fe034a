package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// Story 3: every client connection is reset, several times, during a burst
// of PublishToStream with message IDs. A publisher that is told a publish
// failed sends the same message ID again once the client is usable; after
// recovery the stream holds each message exactly once.
func TestCutConnectionsDuringStreamBurst(t *testing.T) {
	const (
		messages   = 400
		publishers = 4
		cuts       = 5
	)
	// A short timeout: a publish whose acknowledgement was lost in a cut is
	// sent again after it.
	tc := natstest.NewTestClient(t, natstest.WithJetStream(),
		natstest.WithClientOptions(natsclient.WithTimeout(500*time.Millisecond)))
	c := tc.Client
	ctx := testContext(t)
	stream, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "BURST", Subjects: []string{"burst.>"}})
	if err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)

	var (
		acked    atomic.Int64
		dupAcks  atomic.Int64 // acks of a publish sent again that found the message stored
		progress = make(chan struct{}, messages)
		wg       sync.WaitGroup
		mu       sync.Mutex
		retried  int
		failures = map[string]int{}
		wrong    error
	)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			usable := newUsableWaiter(t, c)
			for i := p; i < messages; i += publishers {
				id := "burst-" + strconv.Itoa(i)
				for attempt := 0; ; attempt++ {
					ack, err := c.PublishToStream(ctx, "burst.msg", []byte(strconv.Itoa(i)), jetstream.WithMsgID(id))
					if err == nil {
						if ack.Duplicate {
							dupAcks.Add(1)
						}
						break
					}
					mu.Lock()
					retried++
					failures[errorKind(err)]++
					// PublishToStream sends a message again by itself until
					// ctx ends; only a client that cannot be used at all
					// may make it give up.
					if !errors.Is(err, natsclient.ErrCircuitOpen) && !errors.Is(err, natsclient.ErrNotConnected) && wrong == nil {
						wrong = fmt.Errorf("message %s, attempt %d: %w", id, attempt+1, err)
					}
					mu.Unlock()
					if ctx.Err() != nil || !usable.wait() {
						return
					}
				}
				acked.Add(1)
				progress <- struct{}{}
			}
		}()
	}

	// Cut every connection each time another share of the burst is acked,
	// so that the cuts fall while publishes are in flight.
	for cut := 1; cut <= cuts; cut++ {
		for acked.Load() < int64(cut*messages/(cuts+1)) {
			receive(t, progress, fmt.Sprintf("progress before cut %d (%d acked)", cut, acked.Load()))
		}
		tc.Server.CutConnections()
		waitEvent(t, events, fmt.Sprintf("cut %d seen", cut), toState(natsclient.StateReconnecting))
	}
	finished := make(chan struct{}, 1)
	go func() { wg.Wait(); finished <- struct{}{} }()
	receive(t, finished, "end of the burst")
	if wrong != nil {
		t.Fatal(wrong)
	}
	if acked.Load() != messages {
		t.Fatalf("%d of %d messages acknowledged", acked.Load(), messages)
	}
	t.Logf("%d messages, %d cuts, %d reconnects; %d acks said duplicate; %d publishes the test sent again after an error %v",
		messages, cuts, c.Stats().Reconnects, dupAcks.Load(), retried, failures)

	// Exactly once: the stream holds each message, and nothing twice.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != messages {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, messages)
	}
	seen := make(map[string]uint64, messages)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if first, dup := seen[id]; dup {
			t.Errorf("message ID %s stored twice: sequences %d and %d", id, first, seq)
		}
		seen[id] = seq
	}
	for i := range messages {
		if _, ok := seen["burst-"+strconv.Itoa(i)]; !ok {
			t.Errorf("message burst-%d acknowledged but not in the stream", i)
		}
	}
}

// usableWaiter lets a publisher wait, after an error, until the client can be
// used again: connected with the breaker closed, as its state events say.
type usableWaiter struct {
	t      *testing.T
	c      *natsclient.Client
	events <-chan natsclient.StateChange
}

func newUsableWaiter(t *testing.T, c *natsclient.Client) *usableWaiter {
	return &usableWaiter{t: t, c: c, events: c.StateChanges(testContext(t))}
}

// wait returns true once the client is usable, false if it is not within
// waitTimeout (the test then fails on the missing messages).
func (u *usableWaiter) wait() bool {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		if st := u.c.Stats(); st.State == natsclient.StateConnected && st.Breaker == natsclient.BreakerClosed {
			return true
		}
		select {
		case <-u.events:
		case <-deadline.C:
			u.t.Errorf("client not usable within %v: %+v", waitTimeout, u.c.Stats())
			return false
		}
	}
}

// errorKind names an error for a summary: the sentinel it matches, or its
// text.
func errorKind(err error) string {
	for _, kind := range []error{
		natsclient.ErrCircuitOpen, natsclient.ErrNotConnected, natsclient.ErrClosed,
		natsclient.ErrKVUnknownOutcome, natsclient.ErrKVMaxRetriesExceeded, context.DeadlineExceeded,
	} {
		if errors.Is(err, kind) {
			return kind.Error()
		}
	}
	return err.Error()
}
