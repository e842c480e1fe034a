package natsclient_test

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// nilCtx is the nil context.Context these tests pass: a variable, so that
// vet's check for a literal nil context stays quiet about what is tested.
var nilCtx context.Context

// TestCloseWithNilContextEndsEveryGoroutine holds Close(nil) to what a
// deferred Close needs: it closes (nil stands for context.Background()),
// drains and leaves none of the client's goroutines running, its callback
// goroutine among them.
func TestCloseWithNilContextEndsEveryGoroutine(t *testing.T) {
	srv := natstest.NewServer(t)
	ignore := goleak.IgnoreCurrent()
	closed := make(chan struct{})
	c, err := natsclient.NewClient(srv.URL(), fast(natsclient.WithClosedCallback(func() { close(closed) }))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	if _, err := c.Subscribe("nilctx.close", func(*nats.Msg) { handled <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(natstest.Context(t, waitTimeout), "nilctx.close", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(nilCtx); err != nil {
		t.Fatalf("Close(nil) = %v, want nil", err)
	}
	natstest.Receive(t, handled, waitTimeout, "the message published before Close, drained")
	natstest.Receive(t, closed, waitTimeout, "the closed callback")
	if got := c.State(); got != natsclient.StateClosed {
		t.Fatalf("state after Close(nil) = %v", got)
	}
	goleak.VerifyNone(t, ignore)
}

// nilCtxCall is one public call made with a nil ctx; it returns the call's
// error.
type nilCtxCall func(t *testing.T) error

// TestNilContextIsRefusedEverywhere holds every public method that takes a
// ctx, on the client, a Domain, the stream and bucket handles and a KVStore,
// to the package's rule: a nil ctx is an error matching ErrInvalidArgument
// that says so, and nothing is done. Close is the one exception (nil stands
// for context.Background(), TestCloseWithNilContextEndsEveryGoroutine);
// StateChanges, which returns no error, hands back a channel holding one
// event whose Err says so, then closed. A method added to one of these types
// without a case here fails the test.
func TestNilContextIsRefusedEverywhere(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	c := tc.Client
	stream, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "NILCTX", Subjects: []string{"nilctx.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishToStream(ctx, "nilctx.kept", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "C", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "nilctx", History: 5})
	if _, err := kv.Put(ctx, "k", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	dom, err := c.Domain("")
	if err != nil {
		t.Fatal(err)
	}
	var (
		msg      = func() *nats.Msg { return &nats.Msg{Subject: "nilctx.msg", Data: []byte("x")} }
		handler  = func(jetstream.Msg) error { return nil }
		handlerC = func(context.Context, jetstream.Msg) error { return nil }
		consumer = jetstream.ConsumerConfig{Durable: "D", AckPolicy: jetstream.AckExplicitPolicy}
		push     = jetstream.ConsumerConfig{Durable: "P", DeliverSubject: "nilctx.push", AckPolicy: jetstream.AckExplicitPolicy}
		errOf    = func(_ any, err error) error { return err }
	)
	type lister interface{ Err() error }
	listErr := func(l lister) error {
		// A lister yields its pages on a channel; a refused one has none.
		switch l := l.(type) {
		case jetstream.ConsumerInfoLister:
			for range l.Info() {
			}
		case jetstream.ConsumerNameLister:
			for range l.Name() {
			}
		}
		return l.Err()
	}
	calls := map[string]nilCtxCall{
		"Client.Connect":            func(*testing.T) error { return c.Connect(nilCtx) },
		"Client.Publish":            func(*testing.T) error { return c.Publish(nilCtx, "nilctx.pub", nil) },
		"Client.PublishMsg":         func(*testing.T) error { return c.PublishMsg(nilCtx, msg()) },
		"Client.Request":            func(*testing.T) error { return errOf(c.Request(nilCtx, "nilctx.req", nil)) },
		"Client.RequestMsg":         func(*testing.T) error { return errOf(c.RequestMsg(nilCtx, msg())) },
		"Client.Flush":              func(*testing.T) error { return c.Flush(nilCtx) },
		"Client.DialConnContext":    func(*testing.T) error { return errOf(c.DialConnContext(nilCtx)) },
		"Client.StateChanges":       func(t *testing.T) error { return stateChangesErr(t, c.StateChanges(nilCtx)) },
		"Client.CreateStream":       func(*testing.T) error { return errOf(c.CreateStream(nilCtx, jetstream.StreamConfig{Name: "NEW"})) },
		"Client.Stream":             func(*testing.T) error { return errOf(c.Stream(nilCtx, "NILCTX")) },
		"Client.DeleteStream":       func(*testing.T) error { return c.DeleteStream(nilCtx, "NILCTX") },
		"Client.PublishToStream":    func(*testing.T) error { return errOf(c.PublishToStream(nilCtx, "nilctx.js", nil)) },
		"Client.PublishMsgToStream": func(*testing.T) error { return errOf(c.PublishMsgToStream(nilCtx, msg())) },
		"Client.Consume":            func(*testing.T) error { return errOf(c.Consume(nilCtx, "NILCTX", "C", handler)) },
		"Client.ConsumeFunc":        func(*testing.T) error { return errOf(c.ConsumeFunc(nilCtx, "NILCTX", "C", handlerC)) },
		"Client.CreateKeyValueBucket": func(*testing.T) error {
			return errOf(c.CreateKeyValueBucket(nilCtx, jetstream.KeyValueConfig{Bucket: "new"}))
		},
		"Client.KeyValueBucket":       func(*testing.T) error { return errOf(c.KeyValueBucket(nilCtx, "nilctx")) },
		"Client.DeleteKeyValueBucket": func(*testing.T) error { return c.DeleteKeyValueBucket(nilCtx, "nilctx") },

		"Domain.CreateStream":    func(*testing.T) error { return errOf(dom.CreateStream(nilCtx, jetstream.StreamConfig{Name: "NEW"})) },
		"Domain.Stream":          func(*testing.T) error { return errOf(dom.Stream(nilCtx, "NILCTX")) },
		"Domain.DeleteStream":    func(*testing.T) error { return dom.DeleteStream(nilCtx, "NILCTX") },
		"Domain.PublishToStream": func(*testing.T) error { return errOf(dom.PublishToStream(nilCtx, "nilctx.js", nil)) },
		"Domain.Consume":         func(*testing.T) error { return errOf(dom.Consume(nilCtx, "NILCTX", "C", handler)) },
		"Domain.CreateKeyValueBucket": func(*testing.T) error {
			return errOf(dom.CreateKeyValueBucket(nilCtx, jetstream.KeyValueConfig{Bucket: "new"}))
		},
		"Domain.KeyValueBucket":       func(*testing.T) error { return errOf(dom.KeyValueBucket(nilCtx, "nilctx")) },
		"Domain.DeleteKeyValueBucket": func(*testing.T) error { return dom.DeleteKeyValueBucket(nilCtx, "nilctx") },

		"Stream.Info":                   func(*testing.T) error { return errOf(stream.Info(nilCtx)) },
		"Stream.Purge":                  func(*testing.T) error { return stream.Purge(nilCtx) },
		"Stream.GetMsg":                 func(*testing.T) error { return errOf(stream.GetMsg(nilCtx, 1)) },
		"Stream.GetLastMsgForSubject":   func(*testing.T) error { return errOf(stream.GetLastMsgForSubject(nilCtx, "nilctx.kept")) },
		"Stream.DeleteMsg":              func(*testing.T) error { return stream.DeleteMsg(nilCtx, 1) },
		"Stream.SecureDeleteMsg":        func(*testing.T) error { return stream.SecureDeleteMsg(nilCtx, 1) },
		"Stream.CreateOrUpdateConsumer": func(*testing.T) error { return errOf(stream.CreateOrUpdateConsumer(nilCtx, consumer)) },
		"Stream.CreateConsumer":         func(*testing.T) error { return errOf(stream.CreateConsumer(nilCtx, consumer)) },
		"Stream.UpdateConsumer":         func(*testing.T) error { return errOf(stream.UpdateConsumer(nilCtx, consumer)) },
		"Stream.OrderedConsumer": func(*testing.T) error {
			return errOf(stream.OrderedConsumer(nilCtx, jetstream.OrderedConsumerConfig{}))
		},
		"Stream.Consumer":       func(*testing.T) error { return errOf(stream.Consumer(nilCtx, "C")) },
		"Stream.DeleteConsumer": func(*testing.T) error { return stream.DeleteConsumer(nilCtx, "C") },
		"Stream.PauseConsumer": func(*testing.T) error {
			return errOf(stream.PauseConsumer(nilCtx, "C", time.Now().Add(time.Hour)))
		},
		"Stream.ResumeConsumer":          func(*testing.T) error { return errOf(stream.ResumeConsumer(nilCtx, "C")) },
		"Stream.ListConsumers":           func(*testing.T) error { return listErr(stream.ListConsumers(nilCtx)) },
		"Stream.ConsumerNames":           func(*testing.T) error { return listErr(stream.ConsumerNames(nilCtx)) },
		"Stream.UnpinConsumer":           func(*testing.T) error { return stream.UnpinConsumer(nilCtx, "C", "g") },
		"Stream.ResetConsumer":           func(*testing.T) error { return errOf(stream.ResetConsumer(nilCtx, "C")) },
		"Stream.ResetConsumerToSequence": func(*testing.T) error { return errOf(stream.ResetConsumerToSequence(nilCtx, "C", 1)) },
		"Stream.CreateOrUpdatePushConsumer": func(*testing.T) error {
			return errOf(stream.CreateOrUpdatePushConsumer(nilCtx, push))
		},
		"Stream.CreatePushConsumer": func(*testing.T) error { return errOf(stream.CreatePushConsumer(nilCtx, push)) },
		"Stream.UpdatePushConsumer": func(*testing.T) error { return errOf(stream.UpdatePushConsumer(nilCtx, push)) },
		"Stream.PushConsumer":       func(*testing.T) error { return errOf(stream.PushConsumer(nilCtx, "P")) },

		"KeyValue.Get":              func(*testing.T) error { return errOf(bucket.Get(nilCtx, "k")) },
		"KeyValue.GetRevision":      func(*testing.T) error { return errOf(bucket.GetRevision(nilCtx, "k", 1)) },
		"KeyValue.Put":              func(*testing.T) error { return errOf(bucket.Put(nilCtx, "k", []byte("x"))) },
		"KeyValue.PutString":        func(*testing.T) error { return errOf(bucket.PutString(nilCtx, "k", "x")) },
		"KeyValue.Create":           func(*testing.T) error { return errOf(bucket.Create(nilCtx, "new", []byte("x"))) },
		"KeyValue.Update":           func(*testing.T) error { return errOf(bucket.Update(nilCtx, "k", []byte("x"), 1)) },
		"KeyValue.Delete":           func(*testing.T) error { return bucket.Delete(nilCtx, "k") },
		"KeyValue.Purge":            func(*testing.T) error { return bucket.Purge(nilCtx, "k") },
		"KeyValue.Watch":            func(*testing.T) error { return errOf(bucket.Watch(nilCtx, "k")) },
		"KeyValue.WatchAll":         func(*testing.T) error { return errOf(bucket.WatchAll(nilCtx)) },
		"KeyValue.WatchFiltered":    func(*testing.T) error { return errOf(bucket.WatchFiltered(nilCtx, []string{"k"})) },
		"KeyValue.Keys":             func(*testing.T) error { return errOf(bucket.Keys(nilCtx)) },
		"KeyValue.ListKeys":         func(*testing.T) error { return errOf(bucket.ListKeys(nilCtx)) },
		"KeyValue.ListKeysFiltered": func(*testing.T) error { return errOf(bucket.ListKeysFiltered(nilCtx, "k")) },
		"KeyValue.History":          func(*testing.T) error { return errOf(bucket.History(nilCtx, "k")) },
		"KeyValue.PurgeDeletes":     func(*testing.T) error { return bucket.PurgeDeletes(nilCtx) },
		"KeyValue.Status":           func(*testing.T) error { return errOf(bucket.Status(nilCtx)) },

		"KVStore.Get":     func(*testing.T) error { return errOf(kv.Get(nilCtx, "k")) },
		"KVStore.GetJSON": func(*testing.T) error { var v any; return errOf(kv.GetJSON(nilCtx, "k", &v)) },
		"KVStore.Put":     func(*testing.T) error { return errOf(kv.Put(nilCtx, "k", []byte("x"))) },
		"KVStore.PutJSON": func(*testing.T) error { return errOf(kv.PutJSON(nilCtx, "k", map[string]int{"n": 2})) },
		"KVStore.Create":  func(*testing.T) error { return errOf(kv.Create(nilCtx, "new", []byte("x"))) },
		"KVStore.Update":  func(*testing.T) error { return errOf(kv.Update(nilCtx, "k", []byte("x"), 1)) },
		"KVStore.Delete":  func(*testing.T) error { return kv.Delete(nilCtx, "k") },
		"KVStore.Keys":    func(*testing.T) error { return errOf(kv.Keys(nilCtx)) },
		"KVStore.Watch":   func(*testing.T) error { return errOf(kv.Watch(nilCtx, "k")) },
		"KVStore.UpdateWithRetry": func(*testing.T) error {
			return errOf(kv.UpdateWithRetry(nilCtx, "k", func([]byte) ([]byte, error) { return []byte("x"), nil }))
		},
		"KVStore.UpdateJSON": func(*testing.T) error {
			return kv.UpdateJSON(nilCtx, "k", func(m map[string]any) error { m["n"] = 2; return nil })
		},
		"UpdateJSONAs": func(*testing.T) error {
			return errOf(natsclient.UpdateJSONAs(nilCtx, kv, "k", func(v *map[string]any) error { (*v)["n"] = 2; return nil }))
		},
	}
	covered := map[string]bool{"Client.Close": true, "UpdateJSONAs": true}
	for name := range calls {
		covered[name] = true
	}
	for _, missing := range ctxMethodsNotIn(covered, map[string]any{
		"Client": c, "Domain": dom, "Stream": stream, "KeyValue": bucket, "KVStore": kv,
	}) {
		t.Errorf("%s takes a ctx and has no case in this test", missing)
	}

	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			err := calls[name](t)
			if !errors.Is(err, natsclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "nil context") {
				t.Fatalf("with a nil ctx: %v, want ErrInvalidArgument saying nil context", err)
			}
		})
	}

	// Nothing was done: the stream, its message and consumer, the bucket
	// and its key are as they were, and no stream, consumer or key was
	// added.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream after the calls: %v", err)
	}
	if info.State.Msgs != 1 || info.State.Consumers != 1 {
		t.Fatalf("stream holds %d messages and %d consumers, want 1 and 1", info.State.Msgs, info.State.Consumers)
	}
	if _, err := c.Stream(ctx, "NEW"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream NEW: %v, want not found", err)
	}
	if rev, v := revisionOf(t, bucket, "k"); rev != 1 || string(v) != `{"n":1}` {
		t.Fatalf("key k is %q at revision %d, want {\"n\":1} at 1", v, rev)
	}
	if keys, err := bucket.Keys(ctx); err != nil || len(keys) != 1 {
		t.Fatalf("bucket keys = %v, %v; want only k", keys, err)
	}
	if c.State() != natsclient.StateConnected {
		t.Fatalf("client state = %v after refused calls", c.State())
	}
}

// stateChangesErr reads what StateChanges handed back for a refused ctx: one
// event carrying the error, then a closed channel.
func stateChangesErr(t *testing.T, events <-chan natsclient.StateChange) error {
	t.Helper()
	ev, ok := receiveOrClosed(t, events)
	if !ok {
		return errors.New("the channel was closed without an event saying why")
	}
	if _, ok := receiveOrClosed(t, events); ok {
		return errors.New("the channel delivered a second event; want it closed after the refusal")
	}
	return ev.Err
}

func receiveOrClosed[T any](t *testing.T, ch <-chan T) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(waitTimeout):
		t.Fatalf("nothing on the channel within %v", waitTimeout)
	}
	var zero T
	return zero, false
}

// ctxMethodsNotIn lists the exported methods of values (by the name given
// to each) whose first parameter is a context.Context and whose
// "Type.Method" is not in covered.
func ctxMethodsNotIn(covered map[string]bool, values map[string]any) []string {
	ctxType := reflect.TypeFor[context.Context]()
	var missing []string
	for typeName, v := range values {
		rt := reflect.TypeOf(v)
		for i := range rt.NumMethod() {
			m := rt.Method(i)
			// m.Type has the receiver as its first parameter.
			if m.Type.NumIn() > 1 && m.Type.In(1) == ctxType && !covered[typeName+"."+m.Name] {
				missing = append(missing, typeName+"."+m.Name)
			}
		}
	}
	sort.Strings(missing)
	return missing
}
