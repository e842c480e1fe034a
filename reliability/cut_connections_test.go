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
// recovery the stream holds each acknowledged message exactly once.
//
// The publishers run until the last cut is over, so that every cut falls on
// a live connection carrying publishes: each cut waits for the client to be
// connected again after the one before and for more acknowledgements on the
// new connection. (A burst of fixed length let a starved test goroutine cut
// again before the client had reconnected, cutting nothing.)
func TestCutConnectionsDuringStreamBurst(t *testing.T) {
	const (
		publishers = 4
		cuts       = 5
		// between is how many acknowledgements each cut waits for on the
		// connection the client made after the cut before it.
		between = 40
	)
	// A short timeout: a publish whose acknowledgement was lost in a cut is
	// sent again after it.
	tc := natstest.NewTestClient(t, natstest.WithJetStream(),
		natstest.WithClientOptions(natsclient.WithTimeout(500*time.Millisecond)))
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)
	stream, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "BURST", Subjects: []string{"burst.>"}})
	if err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, c)

	var (
		acked    atomic.Int64
		dupAcks  atomic.Int64 // acks of a publish sent again that found the message stored
		progress = make(chan struct{}, 1)
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		ackedIDs = map[string]bool{}
		retried  int
		failures = map[string]int{}
		wrong    error
	)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			usable := newUsableWaiter(t, c)
			for i := p; ; i += publishers {
				select {
				case <-stop:
					return
				default:
				}
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
				mu.Lock()
				ackedIDs[id] = true
				mu.Unlock()
				acked.Add(1)
				select {
				case progress <- struct{}{}:
				default: // the cutter has a wake-up pending already
				}
			}
		}()
	}

	// awaitAcks waits until more than n messages are acknowledged in all.
	awaitAcks := func(n int64, what string) {
		for acked.Load() <= n {
			natstest.Await(t, progress, waitTimeout, fmt.Sprintf("%s (%d acked)", what, acked.Load()), nil)
		}
	}
	awaitAcks(between, "acknowledgements before cut 1")
	for cut := 1; cut <= cuts; cut++ {
		tc.Server.CutConnections()
		natstest.Await(t, events, waitTimeout, fmt.Sprintf("cut %d seen", cut), natstest.ToState(natsclient.StateReconnecting))
		natstest.Await(t, events, waitTimeout, fmt.Sprintf("reconnect after cut %d", cut), natstest.ToState(natsclient.StateConnected))
		awaitAcks(acked.Load()+between, fmt.Sprintf("acknowledgements after cut %d", cut))
	}
	close(stop)
	finished := make(chan struct{}, 1)
	go func() { wg.Wait(); finished <- struct{}{} }()
	natstest.Await(t, finished, waitTimeout, "end of the burst", nil)
	if wrong != nil {
		t.Fatal(wrong)
	}
	t.Logf("%d messages, %d cuts, %d reconnects; %d acks said duplicate; %d publishes the test sent again after an error %v",
		acked.Load(), cuts, c.Stats().Reconnects, dupAcks.Load(), retried, failures)

	// Exactly once: the stream holds each acknowledged message, and nothing
	// twice. Every publish that was started was also acknowledged: a
	// publisher stops only between messages.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(ackedIDs)) {
		t.Errorf("stream holds %d messages, want the %d acknowledged", info.State.Msgs, len(ackedIDs))
	}
	seen := make(map[string]uint64, len(ackedIDs))
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if first, dup := seen[id]; dup {
			t.Errorf("message ID %s stored twice: sequences %d and %d", id, first, seq)
		}
		if !ackedIDs[id] {
			t.Errorf("message ID %s stored at sequence %d but never acknowledged", id, seq)
		}
		seen[id] = seq
	}
	for id := range ackedIDs {
		if _, ok := seen[id]; !ok {
			t.Errorf("message %s acknowledged but not in the stream", id)
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
	return &usableWaiter{t: t, c: c, events: c.StateChanges(natstest.Context(t, testTimeout))}
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
