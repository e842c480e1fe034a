package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Story 7: bad input, tried as a careless caller would. Each mistake gets a
// clear error naming what was wrong; nothing panics; nothing is sent or
// stored; and the breaker, set to open at the first counted failure, stays
// closed.

const badInputMaxPayload = 64 << 10

// badInputClient is a connected client whose breaker would open at the first
// failure counted against it, on a server with a small max_payload.
func badInputClient(t *testing.T, opts ...natstest.Option) *natstest.TestClient {
	t.Helper()
	return natstest.NewTestClient(t, append([]natstest.Option{
		natstest.WithServerOptions(func(o *server.Options) { o.MaxPayload = badInputMaxPayload }),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)),
	}, opts...)...)
}

// badSubjects are subjects nobody may publish to, each with what is wrong.
var badSubjects = []string{
	"", " ", "a b", "a\tb", "a\nb", "a\r\nPUB x 1\r\n", "a\x00b", "a\x7fb",
	".", "a..b", ".a", "a.", "*", ">", "a.*", "a.>", "a.*.b",
}

// badSubscribeSubjects are subjects nobody may subscribe to.
var badSubscribeSubjects = []string{"", "a b", "a..b", ".a", "a.", "a.>.b", ">.a", "a\x00"}

// wantInvalid checks that err is a caller's-mistake error that names what
// was wrong.
func wantInvalid(t *testing.T, call string, err error, names string, also ...error) {
	t.Helper()
	if !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Errorf("%s = %v, want ErrInvalidArgument", call, err)
		return
	}
	for _, a := range also {
		if !errors.Is(err, a) {
			t.Errorf("%s = %v, want it to match %v too", call, err, a)
		}
	}
	if !strings.Contains(err.Error(), names) {
		t.Errorf("%s = %v, want the error to name %s", call, err, names)
	}
}

// breakerUntouched checks, after a round trip that lets any failure report
// arrive, that nothing was counted against the breaker.
func breakerUntouched(t *testing.T, c *natsclient.Client) {
	t.Helper()
	ctx := natstest.Context(t, testTimeout)
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush after the bad calls: %v", err)
	}
	// A subscribe is a command to the supervisor: once it returns, the
	// supervisor has taken every failure report sent before it.
	sub, err := c.Subscribe("bad.input.sync", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.ConsecutiveFailures != 0 || st.BreakerTrips != 0 || st.Breaker != natsclient.BreakerClosed ||
		st.State != natsclient.StateConnected || st.Connections != 1 || st.Reconnects != 0 {
		t.Fatalf("bad input touched the breaker or the connection: %+v", st)
	}
}

func TestBadInputCore(t *testing.T) {
	tc := badInputClient(t)
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	// Everything that reaches the server lands here; only the valid
	// publishes below may.
	got := make(chan *nats.Msg, 16)
	if _, err := c.Subscribe(">", func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	for _, s := range badSubjects {
		q := fmt.Sprintf("%q", s)
		wantInvalid(t, "Publish("+q+")", c.Publish(ctx, s, []byte("x")), q, nats.ErrBadSubject)
		wantInvalid(t, "PublishMsg("+q+")", c.PublishMsg(ctx, &nats.Msg{Subject: s}), q, nats.ErrBadSubject)
		_, err := c.Request(ctx, s, nil)
		wantInvalid(t, "Request("+q+")", err, q, nats.ErrBadSubject)
		_, err = c.PublishToStream(ctx, s, nil)
		wantInvalid(t, "PublishToStream("+q+")", err, q, nats.ErrBadSubject)
	}
	wantInvalid(t, "PublishMsg with a bad reply", c.PublishMsg(ctx, &nats.Msg{Subject: "a", Reply: "b c"}), `"b c"`, nats.ErrBadSubject)
	for _, s := range badSubscribeSubjects {
		q := fmt.Sprintf("%q", s)
		_, err := c.Subscribe(s, func(*nats.Msg) {})
		wantInvalid(t, "Subscribe("+q+")", err, q, nats.ErrBadSubject)
		_, err = c.QueueSubscribe(s, "workers", func(*nats.Msg) {})
		wantInvalid(t, "QueueSubscribe("+q+")", err, q, nats.ErrBadSubject)
	}
	for _, queue := range []string{"", "a b", "a\nb"} {
		_, err := c.QueueSubscribe("a", queue, func(*nats.Msg) {})
		wantInvalid(t, fmt.Sprintf("QueueSubscribe(queue %q)", queue), err, "queue")
	}
	_, err := c.Subscribe("a", nil)
	wantInvalid(t, "Subscribe(nil handler)", err, "nil")
	_, err = c.QueueSubscribe("a", "q", nil)
	wantInvalid(t, "QueueSubscribe(nil handler)", err, "nil")
	wantInvalid(t, "PublishMsg(nil)", c.PublishMsg(ctx, nil), "nil")

	// A nil context is a mistake; a cancelled one is the caller's decision.
	var nilCtx context.Context
	wantInvalid(t, "Publish(nil ctx)", c.Publish(nilCtx, "a", nil), "nil context")
	wantInvalid(t, "PublishMsg(nil ctx)", c.PublishMsg(nilCtx, &nats.Msg{Subject: "a"}), "nil context")
	wantInvalid(t, "Flush(nil ctx)", c.Flush(nilCtx), "nil context")
	wantInvalid(t, "Connect(nil ctx)", c.Connect(nilCtx), "nil context")
	// Close(nil) is the exception: it closes, as with context.Background()
	// (the root package's TestCloseWithNilContextEndsEveryGoroutine).
	// StateChanges has no error: its refusal is one event, then closed.
	refusal := c.StateChanges(nilCtx)
	if ev := natstest.Await(t, refusal, waitTimeout, "StateChanges(nil ctx)'s refusal", nil); !errors.Is(ev.Err, natsclient.ErrInvalidArgument) {
		t.Errorf("StateChanges(nil ctx) delivered %+v, want an event whose Err matches ErrInvalidArgument", ev)
	}
	if _, open := <-refusal; open {
		t.Errorf("StateChanges(nil ctx): the channel is still open after its refusal")
	}
	_, err = c.Request(nilCtx, "a", nil)
	wantInvalid(t, "Request(nil ctx)", err, "nil context")
	_, err = c.PublishToStream(nilCtx, "a", nil)
	wantInvalid(t, "PublishToStream(nil ctx)", err, "nil context")
	for name, err := range map[string]error{
		"Publish":         c.Publish(cancelled, "a", nil),
		"PublishMsg":      c.PublishMsg(cancelled, &nats.Msg{Subject: "a"}),
		"Flush":           c.Flush(cancelled),
		"Request":         second(c.Request(cancelled, "a", nil)),
		"PublishToStream": second(c.PublishToStream(cancelled, "a", nil)),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s(cancelled ctx) = %v, want context.Canceled", name, err)
		}
	}
	// Connect on a connected client with a cancelled ctx changes nothing,
	// whichever answer wins the race.
	if err := c.Connect(cancelled); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Connect(cancelled) on a connected client = %v", err)
	}

	// Payloads: nil is an empty message; over max_payload is refused,
	// naming the limit; at the limit is fine.
	for _, size := range []int{badInputMaxPayload + 1, 10 << 20} {
		err := c.Publish(ctx, "big", make([]byte, size))
		if !errors.Is(err, nats.ErrMaxPayload) || !strings.Contains(err.Error(), fmt.Sprint(badInputMaxPayload)) {
			t.Errorf("Publish(%d bytes) = %v, want ErrMaxPayload naming the limit %d", size, err, badInputMaxPayload)
		}
	}
	_, err = c.Request(ctx, "big", make([]byte, badInputMaxPayload+1))
	if !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("Request over max_payload = %v, want ErrMaxPayload", err)
	}
	if err := c.Publish(ctx, "empty", nil); err != nil {
		t.Fatalf("Publish(nil payload) = %v", err)
	}
	if err := c.Publish(ctx, "full", make([]byte, badInputMaxPayload-64)); err != nil {
		t.Fatalf("Publish under the limit = %v", err)
	}
	if m := natstest.Await(t, got, waitTimeout, "the empty message", nil); m.Subject != "empty" || len(m.Data) != 0 {
		t.Fatalf("first message to arrive: %q with %d bytes; none of the bad calls may reach the server", m.Subject, len(m.Data))
	}
	if m := natstest.Await(t, got, waitTimeout, "the message under the limit", nil); m.Subject != "full" {
		t.Fatalf("second message to arrive: %q", m.Subject)
	}
	breakerUntouched(t, c)
	select {
	case m := <-got:
		t.Fatalf("a bad call reached the server: %q", m.Subject)
	default:
	}
}

func second[T any](_ T, err error) error { return err }

// After Close every call fails with ErrClosed; Close itself may be called
// again.
func TestBadInputAfterClose(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream())
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)
	bucket, err := c.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "closing"})
	if err != nil {
		t.Fatal(err)
	}
	kv := c.NewKVStore(bucket)
	stream, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "CLOSING", Subjects: []string{"closing.>"}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe("a", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Close(ctx); err != nil {
			t.Fatalf("Close #%d = %v", i+1, err)
		}
	}
	calls := map[string]error{
		"Connect":         c.Connect(ctx),
		"Publish":         c.Publish(ctx, "a", nil),
		"PublishMsg":      c.PublishMsg(ctx, &nats.Msg{Subject: "a"}),
		"Flush":           c.Flush(ctx),
		"Request":         second(c.Request(ctx, "a", nil)),
		"Subscribe":       second(c.Subscribe("a", func(*nats.Msg) {})),
		"QueueSubscribe":  second(c.QueueSubscribe("a", "q", func(*nats.Msg) {})),
		"Unsubscribe":     sub.Unsubscribe(),
		"Drain":           sub.Drain(),
		"PublishToStream": second(c.PublishToStream(ctx, "closing.x", nil)),
		"CreateStream":    second(c.CreateStream(ctx, jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late"}})),
		"stream.Info":     second(stream.Info(ctx)),
		"bucket.Put":      second(bucket.Put(ctx, "k", nil)),
		"KVStore.Get":     second(kv.Get(ctx, "k")),
		"KVStore.Put":     second(kv.Put(ctx, "k", []byte("{}"))),
		"UpdateJSON":      kv.UpdateJSON(ctx, "k", increment),
		"Consume":         second(c.Consume(ctx, "CLOSING", "late", func(jetstream.Msg) error { return nil })),
		"JetStream":       second(c.JetStream()),
	}
	for name, err := range calls {
		if !errors.Is(err, natsclient.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if st := c.State(); st != natsclient.StateClosed {
		t.Errorf("State after Close = %v", st)
	}
	if _, ok := <-c.StateChanges(ctx); ok {
		t.Error("StateChanges after Close gave an open channel")
	}
}

// Close while eight goroutines publish: no panic, every publish either
// succeeds or says the client is closing, and every publish that succeeded
// reaches the server (Close drains).
func TestCloseConcurrentWithPublishes(t *testing.T) {
	const publishers = 8
	tc := natstest.NewTestClient(t)
	c := tc.Client
	observer, err := nats.Connect(tc.Server.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	var delivered atomic.Int64
	if _, err := observer.Subscribe("closing.>", func(*nats.Msg) { delivered.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := observer.Flush(); err != nil {
		t.Fatal(err)
	}

	var (
		ok      atomic.Int64
		started = make(chan struct{}, publishers)
		wg      sync.WaitGroup
		mu      sync.Mutex
		kinds   = map[string]int{}
		wrong   error
	)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := fmt.Sprintf("closing.%d", p)
			for i := 0; ; i++ {
				err := c.Publish(context.Background(), subject, []byte("m"))
				if i == 10 {
					started <- struct{}{}
				}
				if err == nil {
					ok.Add(1)
					continue
				}
				mu.Lock()
				kinds[errorKind(err)]++
				if !errors.Is(err, natsclient.ErrClosed) && !errors.Is(err, nats.ErrConnectionDraining) &&
					!errors.Is(err, nats.ErrConnectionClosed) && wrong == nil {
					wrong = err
				}
				mu.Unlock()
				if errors.Is(err, natsclient.ErrClosed) {
					return
				}
			}
		}()
	}
	for range publishers {
		natstest.Await(t, started, waitTimeout, "publishers running", nil)
	}
	if err := c.Close(natstest.Context(t, testTimeout)); err != nil {
		t.Fatalf("Close under load = %v", err)
	}
	finished := make(chan struct{}, 1)
	go func() { wg.Wait(); finished <- struct{}{} }()
	natstest.Await(t, finished, waitTimeout, "every publisher told the client is closed", nil)
	if wrong != nil {
		t.Fatalf("a publish during Close failed with an unclear error: %v", wrong)
	}
	t.Logf("%d publishes succeeded; failures: %v", ok.Load(), kinds)
	natstest.Eventually(t, waitTimeout, fmt.Sprintf("all %d successful publishes delivered (%d so far)", ok.Load(), delivered.Load()),
		func() bool { return delivered.Load() == ok.Load() })
	if err := observer.Flush(); err != nil {
		t.Fatal(err)
	}
	if d := delivered.Load(); d != ok.Load() {
		t.Fatalf("%d messages delivered, %d publishes succeeded", d, ok.Load())
	}
}

func TestBadInputKV(t *testing.T) {
	tc := badInputClient(t, natstest.WithJetStream())
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)

	for _, name := range []string{"", "a.b", "a b", "a*", "a>", "x/y", "tab\t", "ü"} {
		q := fmt.Sprintf("%q", name)
		_, err := c.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: name})
		wantInvalid(t, "CreateKeyValueBucket("+q+")", err, q, jetstream.ErrInvalidBucketName)
		_, err = c.KeyValueBucket(ctx, name)
		wantInvalid(t, "KeyValueBucket("+q+")", err, q, jetstream.ErrInvalidBucketName)
	}
	bucket, err := c.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "careless", MaxValueSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	kv := c.NewKVStore(bucket)
	// One good entry, which nothing below may change.
	const goodKey, goodValue = "good", `{"n":1}`
	goodRev, err := kv.Put(ctx, goodKey, []byte(goodValue))
	if err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{"", ".a", "a.", "a..b", "a b", "a*", ">", "a\x00", "ü", "a\nb"} {
		q := fmt.Sprintf("%q", key)
		_, err := kv.Put(ctx, key, []byte("{}"))
		wantInvalid(t, "Put("+q+")", err, q, jetstream.ErrInvalidKey)
		_, err = kv.Get(ctx, key)
		wantInvalid(t, "Get("+q+")", err, q, jetstream.ErrInvalidKey)
		_, err = kv.Create(ctx, key, nil)
		wantInvalid(t, "Create("+q+")", err, q, jetstream.ErrInvalidKey)
		_, err = kv.Update(ctx, key, nil, 1)
		wantInvalid(t, "Update("+q+")", err, q, jetstream.ErrInvalidKey)
		wantInvalid(t, "Delete("+q+")", kv.Delete(ctx, key), q, jetstream.ErrInvalidKey)
		wantInvalid(t, "UpdateJSON("+q+")", kv.UpdateJSON(ctx, key, increment), q, jetstream.ErrInvalidKey)
	}

	// Values that are not a JSON object: UpdateJSON says so, naming the
	// key, never calls fn, and leaves the value and revision as they are.
	// (JSON null is not among them: it reads as an empty object.)
	for i, stored := range []string{`[1,2]`, `"text"`, `42`, `true`, `not json`, ``, `{"a":`, `{"a":1} trailing`, " \n\t"} {
		key := fmt.Sprintf("odd%d", i)
		rev, err := kv.Put(ctx, key, []byte(stored))
		if err != nil {
			t.Fatalf("Put(%q): %v", stored, err)
		}
		called := false
		err = kv.UpdateJSON(ctx, key, func(map[string]any) error { called = true; return nil })
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "JSON") && !strings.Contains(err.Error(), "json") {
			t.Errorf("UpdateJSON on %q = %v, want an error naming the key and JSON", stored, err)
		}
		if called {
			t.Errorf("UpdateJSON on %q called fn", stored)
		}
		entry, err := kv.Get(ctx, key)
		if err != nil || string(entry.Value()) != stored || entry.Revision() != rev {
			t.Errorf("after UpdateJSON on %q the entry is %v, %v; want it unchanged (revision %d)", stored, entry, err, rev)
		}
	}

	// The caller's own mistakes in an update: nil fn, fn failing, fn making
	// something JSON cannot encode, a value over the bucket's limit.
	fnErr := errors.New("caller says no")
	for name, check := range map[string]func() error{
		"nil fn": func() error {
			err := kv.UpdateJSON(ctx, goodKey, nil)
			if !errors.Is(err, natsclient.ErrInvalidArgument) {
				return fmt.Errorf("UpdateJSON(nil fn) = %v, want ErrInvalidArgument", err)
			}
			return nil
		},
		"fn error": func() error {
			if err := kv.UpdateJSON(ctx, goodKey, func(map[string]any) error { return fnErr }); !errors.Is(err, fnErr) {
				return fmt.Errorf("UpdateJSON with a failing fn = %v, want fn's error", err)
			}
			return nil
		},
		"unencodable": func() error {
			err := kv.UpdateJSON(ctx, goodKey, func(o map[string]any) error { o["nan"] = math.NaN(); return nil })
			if err == nil {
				return errors.New("UpdateJSON storing NaN succeeded")
			}
			return nil
		},
		"too large": func() error {
			_, err := kv.Put(ctx, goodKey, []byte(`{"big":"`+strings.Repeat("x", 2048)+`"}`))
			if err == nil {
				return errors.New("Put over the bucket's MaxValueSize succeeded")
			}
			return nil
		},
	} {
		if err := check(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	entry, err := kv.Get(ctx, goodKey)
	if err != nil || string(entry.Value()) != goodValue || entry.Revision() != goodRev {
		t.Fatalf("good entry after the bad calls: %v, %v; want %s at revision %d", entry, err, goodValue, goodRev)
	}

	// A store made carelessly fails every call with the mistake.
	bad := c.NewKVStore(nil)
	if !errors.Is(bad.Err(), natsclient.ErrInvalidArgument) {
		t.Fatalf("NewKVStore(nil).Err() = %v", bad.Err())
	}
	if err := bad.UpdateJSON(ctx, "k", increment); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("UpdateJSON on NewKVStore(nil) = %v", err)
	}
	breakerUntouched(t, c)
}
