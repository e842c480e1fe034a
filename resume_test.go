package natsclient_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// resumeBound is the promise: a watcher or consumer delivers a change made
// once the connection (or the hub link) is back within this long of it.
// Before, a watcher took 9 s after a server restart (19 s after the second),
// a consumer through a domain about 28 s: nats.go finds them lost only by
// missed heartbeats.
const resumeBound = 2 * time.Second

// within fails the test unless an item matching want arrives on ch within
// bound of since; earlier items go to seen. It returns the item.
func within[T any](t *testing.T, ch <-chan T, since time.Time, bound time.Duration, what string, want func(T) bool, seen func(T)) T {
	t.Helper()
	timer := time.NewTimer(time.Until(since.Add(bound)))
	defer timer.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
			seen(v)
			if want(v) {
				t.Logf("%s: after %v", what, time.Since(since).Round(time.Millisecond))
				return v
			}
		case <-timer.C:
			t.Fatalf("%s: not within %v of the connection (or the link) coming back", what, bound)
		}
	}
}

// After each of three server restarts, a change made right after the client
// is connected again reaches the watcher within resumeBound, with revisions
// strictly increasing: nothing missed (a change made while the watcher was
// resuming is there) and nothing delivered twice.
func TestKVWatchResumesWithinTwoSecondsOfEachRestart(t *testing.T) {
	watches := map[string]func(jetstream.KeyValue, *natsclient.KVStore, context.Context) (jetstream.KeyWatcher, error){
		"KVStore.Watch": func(_ jetstream.KeyValue, kv *natsclient.KVStore, ctx context.Context) (jetstream.KeyWatcher, error) {
			return kv.Watch(ctx, "k.>")
		},
		"bucket Watch": func(b jetstream.KeyValue, _ *natsclient.KVStore, ctx context.Context) (jetstream.KeyWatcher, error) {
			return b.Watch(ctx, "k.>")
		},
	}
	for name, watch := range watches {
		t.Run(name, func(t *testing.T) {
			tc := natstest.NewTestClient(t, natstest.WithKV())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "resume", Storage: jetstream.FileStorage})
			if _, err := bucket.Put(ctx, "k.0", []byte("0")); err != nil {
				t.Fatal(err)
			}
			w, err := watch(bucket, kv, ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w.Stop() }()
			var last uint64
			seen := func(e jetstream.KeyValueEntry) {
				if e == nil {
					return
				}
				if e.Revision() <= last {
					t.Fatalf("revision %d (%s=%s) after %d: delivered twice or out of order", e.Revision(), e.Key(), e.Value(), last)
				}
				last = e.Revision()
			}
			value := func(v string) func(jetstream.KeyValueEntry) bool {
				return func(e jetstream.KeyValueEntry) bool { return e != nil && string(e.Value()) == v }
			}
			within(t, w.Updates(), time.Now(), waitTimeout, "the initial value", value("0"), seen)
			for i := 1; i <= 3; i++ {
				tc.RestartServer(waitTimeout)
				back := time.Now()
				v := fmt.Sprint(i)
				// The server may take a moment to have JetStream again.
				eventuallyOK(t, "put after restart "+v, func() error {
					_, err := bucket.Put(ctx, "k."+v, []byte(v))
					return err
				})
				within(t, w.Updates(), back, resumeBound, "restart "+v+": the change made after it", value(v), seen)
			}
			// A change made now comes once, after all the others.
			if _, err := bucket.Put(ctx, "k.last", []byte("last")); err != nil {
				t.Fatal(err)
			}
			within(t, w.Updates(), time.Now(), waitTimeout, "a change after the restarts", value("last"), seen)
		})
	}
}

// After each of three server restarts, a message published right after the
// client is connected again reaches a Consume handler within resumeBound,
// once each.
func TestConsumeResumesWithinTwoSecondsOfEachRestart(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := tc.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "RESUME", Subjects: []string{"resume.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 64)
	cs, err := tc.Client.Consume(ctx, "RESUME", "worker", func(m jetstream.Msg) error { got <- string(m.Data()); return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	counts := map[string]int{}
	seen := func(m string) {
		if counts[m]++; counts[m] > 1 {
			t.Fatalf("message %q delivered %d times", m, counts[m])
		}
	}
	is := func(want string) func(string) bool { return func(m string) bool { return m == want } }
	if _, err := tc.Client.PublishToStream(ctx, "resume.x", []byte("0")); err != nil {
		t.Fatal(err)
	}
	// Each message's ack must reach the server before the restart, or it
	// comes again (JetStream's at-least-once), which is not what is tested.
	acked := func() {
		t.Helper()
		natstest.Eventually(t, waitTimeout, "the server has the acknowledgements", func() bool {
			st, err := tc.Client.Stream(ctx, "RESUME")
			if err != nil {
				return false
			}
			c, err := st.Consumer(ctx, "worker")
			return err == nil && c.CachedInfo().NumAckPending == 0
		})
	}
	within(t, got, time.Now(), waitTimeout, "the first message", is("0"), seen)
	for i := 1; i <= 3; i++ {
		acked()
		tc.RestartServer(waitTimeout)
		back := time.Now()
		v := fmt.Sprint(i)
		eventuallyOK(t, "publish after restart "+v, func() error {
			_, err := tc.Client.PublishToStream(ctx, "resume.x", []byte(v))
			return err
		})
		within(t, got, back, resumeBound, "restart "+v+": the message published after it", is(v), seen)
	}
}

// hubConsumers returns the names of the consumers of stream at the hub.
func hubConsumers(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) map[string]bool {
	t.Helper()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s at the hub: %v", stream, err)
	}
	names := map[string]bool{}
	l := st.ConsumerNames(ctx)
	for name := range l.Name() {
		names[name] = true
	}
	if err := l.Err(); err != nil {
		t.Fatalf("consumers of %s at the hub: %v", stream, err)
	}
	return names
}

// A consumer and a watcher of the hub's, through a leaf node and the hub's
// domain, deliver what the hub stores after its link to the leaf returns
// within resumeBound of the link's return, after a short cut and after one
// long enough for the hub to delete the watcher's consumer, with what the
// hub stored during each cut delivered once. The client's own connection
// (to the leaf) never drops: only the client's probe of the domain tells it
// the hub answers again. Before, the consumer resumed after about 28 s
// (nats.go's missed heartbeats), and the watcher after the long cut only
// when jetstream's heartbeat check (every 10 s) recreated its consumer.
//
// The client's timeout is a second: once in some dozens of runs on a loaded
// machine a request made right after the link returned got no answer (a
// watcher's start hung, in one), and a session's start is bounded by
// the client's timeout, then made again. With the default 5 s that one run
// would miss the bound.
func TestDomainConsumeAndWatchResumeWithinTwoSecondsOfTheHubLink(t *testing.T) {
	site := newEdgeSite(t, natsclient.WithTimeout(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	feed := newCentralFeed(t, ctx, site)
	hubJS, hubKV, got, w := feed.hubJS, feed.hubKV, feed.got, feed.w

	counts := map[string]int{}
	consumed := func(m string) {
		if counts[m]++; counts[m] > 1 {
			t.Fatalf("message %q delivered %d times", m, counts[m])
		}
	}
	var last uint64
	values := map[string]bool{}
	watched := func(e jetstream.KeyValueEntry) {
		if e == nil {
			return
		}
		if e.Revision() <= last {
			t.Fatalf("revision %d (%s) after %d: delivered twice or out of order", e.Revision(), e.Value(), last)
		}
		last = e.Revision()
		values[string(e.Value())] = true
	}
	is := func(want string) func(string) bool { return func(m string) bool { return m == want } }
	value := func(v string) func(jetstream.KeyValueEntry) bool {
		return func(e jetstream.KeyValueEntry) bool { return e != nil && string(e.Value()) == v }
	}
	within(t, w.Updates(), time.Now(), waitTimeout, "the watcher's initial value", value("hello"), watched)
	for i := 1; i <= 2; i++ {
		v := fmt.Sprint(i)
		// The last message's ack must reach the hub before the cut, or it
		// comes again (at-least-once), which is not what is tested.
		natstest.Eventually(t, waitTimeout, "the hub has the acknowledgements", func() bool {
			c, err := hubJS.Consumer(ctx, "CENTRAL", "edge-reader")
			return err == nil && c.CachedInfo().NumAckPending == 0
		})
		watches := hubConsumers(t, ctx, hubJS, "KV_cfg")
		site.leaf.HubLink().Cut()
		site.leaf.WaitForHubLink(false)
		// The hub drops the pull request of a consumer it lost sight of:
		// what follows needs a new one, which only the client can send.
		natstest.Eventually(t, waitTimeout, "the hub drops the cut-off consumer's pull request", func() bool {
			c, err := hubJS.Consumer(ctx, "CENTRAL", "edge-reader")
			return err == nil && c.CachedInfo().NumWaiting == 0
		})
		if i == 2 {
			// A longer cut: the hub deletes the watcher's consumer (an
			// ephemeral one, 5 s without interest), which otherwise goes on
			// delivering once the link and the watcher's interest return.
			natstest.Eventually(t, waitTimeout, "the hub deletes the watcher's consumer", func() bool {
				left := hubConsumers(t, ctx, hubJS, "KV_cfg")
				for name := range watches {
					if left[name] {
						return false
					}
				}
				return true
			})
		}
		// What the hub stores while the site is cut off comes after.
		during := "during cut " + v
		if _, err := hubJS.Publish(ctx, "central.event", []byte(during)); err != nil {
			t.Fatalf("publish %q at the hub: %v", during, err)
		}
		if _, err := hubKV.Put(ctx, "greeting", []byte(during)); err != nil {
			t.Fatalf("put %q at the hub: %v", during, err)
		}
		site.leaf.HubLink().Restore()
		site.leaf.WaitForHubLink(true)
		back := time.Now()
		if _, err := hubJS.Publish(ctx, "central.event", []byte(v)); err != nil {
			t.Fatalf("publish %q at the hub: %v", v, err)
		}
		if _, err := hubKV.Put(ctx, "greeting", []byte(v)); err != nil {
			t.Fatalf("put %q at the hub: %v", v, err)
		}
		within(t, got, back, resumeBound, "link back "+v+": the consumer", is(v), consumed)
		within(t, w.Updates(), back, resumeBound, "link back "+v+": the watcher", value(v), watched)
		if counts[during] != 1 || !values[during] {
			t.Fatalf("%q, stored during the cut: consumed %d times, watched %v; want once, and seen", during, counts[during], values[during])
		}
	}
	if st := site.client.Stats(); st.Breaker != natsclient.BreakerClosed || st.BreakerTrips != 0 {
		t.Fatalf("breaker %v after %d trips; want closed, never tripped", st.Breaker, st.BreakerTrips)
	}
}
