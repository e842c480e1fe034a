package natsclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestJetStreamCallsBeforeConnect(t *testing.T) {
	c := newClient(t, "nats://127.0.0.1:1")
	ctx := natstest.Context(t, waitTimeout)
	if _, err := c.JetStream(); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("JetStream() = %v, want ErrNotConnected", err)
	}
	if _, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "S"}); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("CreateStream = %v", err)
	}
	if _, err := c.PublishToStream(ctx, "s.a", nil); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("PublishToStream = %v", err)
	}
	if _, err := c.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "b"}); !errors.Is(err, natsclient.ErrNotConnected) {
		t.Fatalf("CreateKeyValueBucket = %v", err)
	}
}

func TestStreamsCreateUpdateFindDelete(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream(),
		natstest.WithClientOptions(natsclient.WithCircuitBreakerThreshold(1)))
	c := tc.Client
	ctx := natstest.Context(t, waitTimeout)

	cfg := jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, MaxMsgs: 100}
	if _, err := c.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.MaxMsgs = 200 // exists with another config: updated
	st, err := c.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("CreateStream on an existing stream with a new config: %v", err)
	}
	if info, err := st.Info(ctx); err != nil || info.Config.MaxMsgs != 200 {
		t.Fatalf("after update: %+v, %v", info, err)
	}
	if _, err := c.Stream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream(ctx, "NOPE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("Stream(NOPE) = %v, want ErrStreamNotFound", err)
	}
	for _, name := range []string{"", "a.b", "a b", "a*", "a>"} {
		if _, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: name}); !errors.Is(err, natsclient.ErrInvalidArgument) {
			t.Fatalf("CreateStream(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	if err := c.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteStream(ctx, "EVENTS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("DeleteStream twice = %v", err)
	}
	if _, err := c.KeyValueBucket(ctx, "nobucket"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("KeyValueBucket(missing) = %v, want ErrBucketNotFound", err)
	}
	if st := c.Stats(); st.ConsecutiveFailures != 0 || st.Breaker != natsclient.BreakerClosed {
		t.Fatalf("missing streams and bad names touched the breaker: %+v", st)
	}
}

func TestCreateKeyValueBucketReturnsExistingOrSaysItDiffers(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	cfg := jetstream.KeyValueConfig{Bucket: "config", History: 5}
	first, err := tc.Client.CreateKeyValueBucket(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	again, err := tc.Client.CreateKeyValueBucket(ctx, cfg)
	if err != nil {
		t.Fatalf("same config again: %v", err)
	}
	if e, err := again.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("existing bucket not returned as it is: %v, %v", e, err)
	}
	cfg.History = 10
	_, err = tc.Client.CreateKeyValueBucket(ctx, cfg)
	if !errors.Is(err, jetstream.ErrBucketExists) || !strings.Contains(err.Error(), "different configuration") {
		t.Fatalf("different config = %v, want ErrBucketExists saying so", err)
	}
	if err := tc.Client.DeleteKeyValueBucket(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	if err := tc.Client.DeleteKeyValueBucket(ctx, "config"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("delete twice = %v", err)
	}
}

func TestPublishToStreamStoresOnceDespiteLostAcknowledgement(t *testing.T) {
	logs := matchLogger{want: "no acknowledgement", lines: make(chan string, 16)}
	tc := natstest.NewTestClient(t, natstest.WithJetStream(), natstest.WithClientOptions(
		natsclient.WithTimeout(500*time.Millisecond), natsclient.WithLogger(logs)))
	ctx := natstest.Context(t, waitTimeout)
	st, err := tc.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}

	// An explicit message ID: the second publish is a duplicate.
	for i, wantDup := range []bool{false, true} {
		ack, err := tc.Client.PublishToStream(ctx, "orders.new", []byte("1"), jetstream.WithMsgID("order-1"))
		if err != nil || ack.Duplicate != wantDup {
			t.Fatalf("publish #%d = %+v, %v; want Duplicate %v", i, ack, err, wantDup)
		}
	}

	// No ID given, and the acknowledgement is lost: the retry carries the
	// same random ID, so the stream stores the message once.
	tc.Server.FreezeReplies()
	result := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ack, err := tc.Client.PublishToStream(ctx, "orders.new", []byte("2"))
		if err == nil && !ack.Duplicate {
			err = fmt.Errorf("retry was stored again: %+v", ack)
		}
		result <- err
	}()
	t.Logf("client: %s", natstest.Receive(t, logs.lines, waitTimeout, "log line of a publish without acknowledgement"))
	tc.Server.Thaw()
	if err := natstest.Receive(t, result, waitTimeout, "PublishToStream's result"); err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, %v; want 2", info.State.Msgs, err)
	}

	// What the server refuses is returned at once, not retried.
	if _, err := tc.Client.PublishToStream(ctx, "orders.new", nil, jetstream.WithExpectLastSequence(99)); err == nil ||
		!strings.Contains(err.Error(), "attempts: 1") {
		t.Fatalf("failed expectation = %v, want an error after 1 attempt", err)
	}
	if _, err := tc.Client.PublishToStream(ctx, "orders..bad", nil); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("bad subject = %v", err)
	}
}

// collector records what a Consume handler saw, rejecting each message
// listed in reject the first time it arrives.
type collector struct {
	mu     sync.Mutex
	seen   []string
	reject map[string]bool
	got    chan string
}

func newCollector(reject ...string) *collector {
	c := &collector{reject: map[string]bool{}, got: make(chan string, 100)}
	for _, r := range reject {
		c.reject[r] = true
	}
	return c
}

func (c *collector) handle(msg jetstream.Msg) error {
	data := string(msg.Data())
	c.mu.Lock()
	c.seen = append(c.seen, data)
	refuse := c.reject[data]
	delete(c.reject, data)
	c.mu.Unlock()
	c.got <- data
	if refuse {
		return errors.New("not now")
	}
	return nil
}

func TestConsumeAcksWhatTheHandlerAcceptsAndFollowsTheClient(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream(),
		natstest.WithClientOptions(natsclient.WithMaxReconnects(0)))
	ctx := natstest.Context(t, waitTimeout)
	st, err := tc.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector("m2")
	cons, err := tc.Client.Consume(ctx, "JOBS", "worker", col.handle)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		if _, err := tc.Client.PublishToStream(ctx, "jobs.run", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		publish(m)
	}
	got := map[string]int{}
	for len(got) < 3 || got["m2"] < 2 {
		got[natstest.Receive(t, col.got, waitTimeout, "delivery")]++
	}
	if got["m1"] != 1 || got["m3"] != 1 {
		t.Fatalf("deliveries %v: accepted messages delivered again", got)
	}
	natstest.Eventually(t, waitTimeout, "all acknowledged", func() bool {
		info, err := st.Consumer(ctx, "worker")
		if err != nil {
			return false
		}
		ci := info.CachedInfo()
		return ci.NumAckPending == 0 && ci.AckFloor.Stream == 3 && ci.Config.Durable == "worker"
	})

	// A new connection (nats.go gives up at once), then a restart: consuming
	// goes on, and the stream handle keeps working.
	events := tc.Client.StateChanges(ctx)
	tc.Server.Stop()
	natstest.Await(t, events, waitTimeout, "reconnecting", natstest.ToState(natsclient.StateReconnecting))
	tc.Server.Start()
	natstest.Await(t, events, waitTimeout, "connected on a new connection", natstest.ToState(natsclient.StateConnected))
	publish("m4")
	if m := natstest.Receive(t, col.got, waitTimeout, "delivery on the new connection"); m != "m4" {
		t.Fatalf("got %q, want m4", m)
	}
	tc.Server.Restart()
	natstest.Await(t, events, waitTimeout, "connected after restart", natstest.ToState(natsclient.StateConnected))
	publish("m5")
	if m := natstest.Receive(t, col.got, waitTimeout, "delivery after restart"); m != "m5" {
		t.Fatalf("got %q, want m5", m)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 5 {
		t.Fatalf("stream handle after new connections: %v, %v", info, err)
	}
	if n := tc.Client.Stats().Connections; n < 2 {
		t.Fatalf("Connections = %d, want a new one dialled", n)
	}

	cons.Stop()
	cons.Stop() // idempotent
	select {
	case <-cons.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	publish("m6")
	// The consumer is durable: a new Consume binds it and gets what is left.
	again, err := tc.Client.Consume(ctx, "JOBS", "worker", col.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	if m := natstest.Receive(t, col.got, waitTimeout, "delivery after binding again"); m != "m6" {
		t.Fatalf("got %q, want m6", m)
	}
}

func TestConsumeBadArgumentsAndMissingStream(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream())
	ctx := natstest.Context(t, waitTimeout)
	handler := func(jetstream.Msg) error { return nil }
	if _, err := tc.Client.Consume(ctx, "NOPE", "c", handler); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("Consume on a missing stream = %v", err)
	}
	if _, err := tc.Client.Consume(ctx, "S", "c", nil); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("nil handler = %v", err)
	}
	if _, err := tc.Client.Consume(ctx, "S", "a.b", handler); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("bad consumer name = %v", err)
	}
	// Ending ctx stops it too.
	if _, err := tc.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	life, cancel := context.WithCancel(ctx)
	cons, err := tc.Client.Consume(life, "S", "c", handler)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	natstest.Receive(t, cons.Done(), waitTimeout, "consumption stopped by its context")

	// Closing the client stops it too, and a KVStore watcher, with no
	// goroutine left behind (goleak checks at the end of the package).
	cons, err = tc.Client.Consume(ctx, "S", "c", handler)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "w"}); err != nil {
		t.Fatal(err)
	}
	bucket, err := tc.Client.KeyValueBucket(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	w, err := tc.Client.NewKVStore(bucket).Watch(ctx, ">")
	if err != nil {
		t.Fatal(err)
	}
	tc.Close()
	natstest.Receive(t, cons.Done(), waitTimeout, "consumption stopped by Close")
	deadline := time.After(waitTimeout)
	for open := true; open; {
		select {
		case _, open = <-w.Updates():
		case <-deadline:
			t.Fatal("watcher's Updates not closed by Close")
		}
	}
}

func TestPublishToStreamNoStreamCapturesTheSubject(t *testing.T) {
	// Defaults of the client aside, a generous timeout: waiting it out,
	// rather than knowing the answer, fails the test.
	tc := natstest.NewTestClient(t, natstest.WithJetStream(), natstest.WithClientOptions(
		natsclient.WithTimeout(time.Minute), natsclient.WithCircuitBreakerThreshold(1)))
	ctx := natstest.Context(t, waitTimeout)
	start := time.Now()
	_, err := tc.Client.PublishToStream(ctx, "nobody.listens", []byte("x"))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish to a subject no stream captures = %v, want jetstream.ErrNoStreamResponse", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("took %v to find that no stream captures the subject", elapsed)
	}
	if !strings.Contains(err.Error(), "no stream captures") {
		t.Fatalf("error does not say why: %v", err)
	}
	if st := tc.Client.Stats(); st.BreakerTrips != 0 || st.Breaker != natsclient.BreakerClosed {
		t.Fatalf("a missing stream touched the breaker: %+v", st)
	}
}
