package natsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// These tests cut the connection between a write and its reply with the
// harness's fault proxy, and check that the change is applied exactly once.

// matchLogger forwards the client's log lines that contain want to a channel.
type matchLogger struct {
	want  string
	lines chan string
}

func (l matchLogger) Printf(format string, v ...any) {
	if line := fmt.Sprintf(format, v...); strings.Contains(line, l.want) {
		select {
		case l.lines <- line:
		default:
		}
	}
}

// lostAckHarness is a client whose KV requests time out after 1s, a bucket,
// and the log line that says a write got no acknowledgement.
type lostAckHarness struct {
	srv     *natstest.Server // the server the client talks to, and faults
	bucket  jetstream.KeyValue
	kv      *natsclient.KVStore
	noAck   chan string
	direct  jetstream.KeyValue // the same bucket, bypassing the proxy
	counter string
}

func newLostAckHarness(t *testing.T, cfg jetstream.KeyValueConfig, opts ...natsclient.Option) *lostAckHarness {
	t.Helper()
	log := matchLogger{want: "no acknowledgement", lines: make(chan string, 16)}
	tc := natstest.NewTestClient(t, natstest.WithKV(), natstest.WithClientOptions(append([]natsclient.Option{
		natsclient.WithTimeout(time.Second), natsclient.WithLogger(log)}, opts...)...))
	bucket, kv := newBucket(t, tc, cfg, func(o *natsclient.KVOptions) { o.Timeout = 20 * time.Second })
	direct, err := natstest.JetStream(t, tc.Server.DirectURL()).KeyValue(natstest.Context(t, waitTimeout), cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	h := &lostAckHarness{srv: tc.Server, bucket: bucket, kv: kv, noAck: log.lines, direct: direct, counter: "counter"}
	if _, err := direct.Put(natstest.Context(t, waitTimeout), h.counter, []byte(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	return h
}

// increment runs UpdateJSON on the counter in a goroutine. The first call of
// fn asks the test goroutine to apply fault (the harness's faults are driven
// from the test goroutine) and then returns, so the write that follows meets
// the fault. afterWrite runs next, while the client still waits for its
// acknowledgement; once the store logs that the write got none, duringFault
// runs and the proxy thaws. It returns UpdateJSON's error and how often fn
// was called.
func (h *lostAckHarness) increment(t *testing.T, fault, afterWrite, duringFault func()) (error, int32) {
	t.Helper()
	var calls atomic.Int32
	faultNow, faulted := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- h.kv.UpdateJSON(context.Background(), h.counter, func(m map[string]any) error {
			if calls.Add(1) == 1 {
				faultNow <- struct{}{}
				<-faulted
			}
			n, _ := m["n"].(float64)
			m["n"] = n + 1
			return nil
		})
	}()
	natstest.Receive(t, faultNow, waitTimeout, "first call of fn")
	fault()
	close(faulted)
	afterWrite()
	line := natstest.Receive(t, h.noAck, waitTimeout, "log line of a write without acknowledgement")
	t.Logf("client: %s", line)
	duringFault()
	h.srv.Thaw()
	return natstest.Receive(t, result, waitTimeout, "UpdateJSON's result"), calls.Load()
}

func nop() {}

// value reads the counter directly from the server.
func (h *lostAckHarness) value(t *testing.T) int {
	t.Helper()
	e, err := h.direct.Get(natstest.Context(t, waitTimeout), h.counter)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ N int }
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		t.Fatal(err)
	}
	return v.N
}

func TestKVLostAcknowledgementIsFoundStoredNotAppliedTwice(t *testing.T) {
	h := newLostAckHarness(t, jetstream.KeyValueConfig{Bucket: "lostack"})
	// The write reaches the server and is stored; its acknowledgement is held.
	err, calls := h.increment(t, h.srv.FreezeReplies, nop, nop)
	if err != nil {
		t.Fatalf("UpdateJSON = %v, want success found by reading back", err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times: a stored write was applied again", calls)
	}
	if n := h.value(t); n != 1 {
		t.Fatalf("counter = %d, want exactly 1", n)
	}
}

func TestKVWriteHeldBothWaysIsStoredOnce(t *testing.T) {
	h := newLostAckHarness(t, jetstream.KeyValueConfig{Bucket: "frozen"})
	// Nothing reaches the server until Thaw; the held write and any resend
	// then arrive, and only one of them may be stored.
	err, calls := h.increment(t, h.srv.Freeze, nop, nop)
	if err != nil {
		t.Fatalf("UpdateJSON = %v", err)
	}
	if n := h.value(t); n != 1 {
		t.Fatalf("counter = %d after %d calls of fn, want exactly 1", n, calls)
	}
}

func TestKVWriteOvertakenWhileHeldIsRetriedOnTheNewValue(t *testing.T) {
	h := newLostAckHarness(t, jetstream.KeyValueConfig{Bucket: "overtaken"})
	// Our write is held; meanwhile another writer updates the counter with
	// compare-and-swap. Ours can then never be stored (it expects the old
	// revision), so the store must read again and call fn on the new value.
	err, calls := h.increment(t, h.srv.Freeze, nop, func() {
		ctx := natstest.Context(t, waitTimeout)
		e, err := h.direct.Get(ctx, h.counter)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.direct.Update(ctx, h.counter, []byte(`{"n":100}`), e.Revision()); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatalf("UpdateJSON = %v", err)
	}
	if n := h.value(t); n != 101 || calls != 2 {
		t.Fatalf("counter = %d after %d calls of fn, want 101 after 2", n, calls)
	}
}

func TestKVUnknownOutcomeWhenHistoryNoLongerTells(t *testing.T) {
	h := newLostAckHarness(t, jetstream.KeyValueConfig{Bucket: "forgetful", History: 1})
	// Our write is stored but its acknowledgement held; two plain puts then
	// overwrite it, before the client looks, and with History 1 nothing says
	// whether ours was there.
	err, calls := h.increment(t, h.srv.FreezeReplies, func() {
		ctx := natstest.Context(t, waitTimeout)
		natstest.Eventually(t, waitTimeout, "our write stored", func() bool { return h.value(t) == 1 })
		for _, v := range []string{`{"n":50}`, `{"n":60}`} {
			if _, err := h.direct.Put(ctx, h.counter, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
	}, nop)
	if !errors.Is(err, natsclient.ErrKVUnknownOutcome) {
		t.Fatalf("UpdateJSON = %v, want ErrKVUnknownOutcome", err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times, want 1: an unknown outcome is never retried", calls)
	}
	if msg := err.Error(); !strings.Contains(msg, "forgetful/counter") || !strings.Contains(msg, "History") ||
		!strings.Contains(msg, "message ID ") {
		t.Fatalf("error does not explain itself: %v", err)
	}
	if n := h.value(t); n != 60 {
		t.Fatalf("counter = %d, want the last put's 60", n)
	}
}

func TestKVPutWithLostAcknowledgementIsStoredOnce(t *testing.T) {
	h := newLostAckHarness(t, jetstream.KeyValueConfig{Bucket: "puts", History: 10})
	done := make(chan error, 1)
	h.srv.FreezeReplies()
	go func() {
		_, err := h.kv.Put(context.Background(), "p", []byte("once"))
		done <- err
	}()
	natstest.Receive(t, h.noAck, waitTimeout, "log line of a put without acknowledgement")
	h.srv.Thaw()
	if err := natstest.Receive(t, done, waitTimeout, "Put's result"); err != nil {
		t.Fatalf("Put = %v", err)
	}
	hist, err := h.direct.History(natstest.Context(t, waitTimeout), "p")
	if err != nil || len(hist) != 1 {
		t.Fatalf("history of p = %d entries, %v; want the put stored once", len(hist), err)
	}
}

func TestKVBreakerOpeningDuringAnUnansweredWriteFailsFastAsUnknown(t *testing.T) {
	h := newLostAckHarness(t, jetstream.KeyValueConfig{Bucket: "gone"},
		natsclient.WithCircuitBreakerThreshold(1), natsclient.WithReconnectWait(10*time.Millisecond))
	// The write's acknowledgement is held, then the server goes away: the
	// breaker opens while the store tries to find out whether the write was
	// stored. It must say so at once, not retry until its 20s Timeout.
	start := time.Now()
	err, calls := h.increment(t, h.srv.FreezeReplies, nop, h.srv.Stop)
	if !errors.Is(err, natsclient.ErrKVUnknownOutcome) || !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("UpdateJSON = %v, want ErrKVUnknownOutcome and ErrCircuitOpen", err)
	}
	if elapsed := time.Since(start); calls != 1 || elapsed > 10*time.Second {
		t.Fatalf("fn called %d times, returned after %v", calls, elapsed)
	}
}
