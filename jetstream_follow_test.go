package natsclient_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// newConnections makes the client dial n new connections, one after the
// other: with MaxReconnects 0, nats.go gives a cut connection up and the
// supervisor dials a new one. After each, live(i) must show that what
// follows the client works on the new connection.
func newConnections(t *testing.T, tc *natstest.TestClient, n int, live func(i int)) {
	t.Helper()
	// The events are watched for as long as the connections take (each wait
	// has its own deadline): 100 of them outlast testContext on a loaded
	// machine, and its end would close the channel mid-way.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := tc.Client.StateChanges(ctx)
	start := tc.Client.Stats().Connections
	defer func() {
		if got := tc.Client.Stats().Connections - start; got != uint64(n) {
			t.Fatalf("%d new connections, want %d", got, n)
		}
	}()
	for i := 0; i < n; i++ {
		before := tc.Client.Stats().Connections
		tc.Server.CutConnections()
		natstest.Await(t, events, waitTimeout, "connected again", func(ev natsclient.StateChange) bool {
			return ev.To == natsclient.StateConnected && tc.Client.Stats().Connections > before
		})
		live(i)
	}
}

// footprint is the process's goroutines and live heap after a collection.
func footprint() (goroutines int, heap uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

// settles waits until the goroutines and heap are back near their level
// before: a leak per connection would leave 100 goroutines and megabytes
// (before the fix: 94 goroutines and 5 MB). Both fall back only after a
// while: nats.go keeps a closed connection's buffers reachable for some
// seconds, and on the embedded backend the server shares the process and
// keeps the ephemeral consumers of watches it no longer serves until it
// removes them, 5s or more later. Hence the long deadline.
func settles(t *testing.T, what string, goroutines int, heap uint64) {
	t.Helper()
	const slackGoroutines, slackHeap, deadline = 10, 1 << 20, time.Minute
	g, h := footprint()
	for end := time.Now().Add(deadline); g > goroutines+slackGoroutines || h > heap+slackHeap; g, h = footprint() {
		if time.Now().After(end) {
			t.Fatalf("%s: goroutines %d → %d, heap %d KB → %d KB after %v", what, goroutines, g, heap>>10, h>>10, deadline)
		}
		time.Sleep(100 * time.Millisecond) // polling: nothing announces a collection
	}
	t.Logf("%s: goroutines %d → %d, heap %d KB → %d KB", what, goroutines, g, heap>>10, h>>10)
}

func TestKVWatchLeaksNothingPerNewConnection(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV(),
		natstest.WithClientOptions(natsclient.WithMaxReconnects(0)))
	// Longer than testContext: settling may take most of a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "leak"})
	// The watch lives as long as the test, not just testContext's deadline:
	// a context that ended would release what it holds and hide a leak.
	life, stop := context.WithCancel(context.Background())
	defer stop()
	w, err := kv.Watch(life, ">")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if e := natstest.Receive(t, w.Updates(), waitTimeout, "end of initial values"); e != nil {
		t.Fatalf("initial values of an empty bucket: %v", e)
	}
	// Each new connection is watched again: a change written on it arrives.
	live := func(i int) {
		t.Helper()
		if _, err := kv.Put(ctx, "n", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if e := natstest.Receive(t, w.Updates(), waitTimeout, "a change on the new connection"); e == nil || string(e.Value()) != fmt.Sprint(i) {
			t.Fatalf("after new connection %d: %v", i, e)
		}
	}
	newConnections(t, tc, 3, live) // whatever the first new connections start once
	g, h := footprint()
	newConnections(t, tc, 100, live)
	settles(t, "100 new connections under a watch", g, h)
	live(100) // still watching: what settled was not the watch ending
}

func TestConsumeLeaksNothingPerNewConnection(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream(),
		natstest.WithClientOptions(natsclient.WithMaxReconnects(0)))
	// Longer than testContext: settling may take most of a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := tc.Client.CreateStream(ctx, jetstream.StreamConfig{Name: "LEAK", Subjects: []string{"leak.>"}})
	if err != nil {
		t.Fatal(err)
	}
	// A message the server handed to the pull request of a connection just
	// cut comes again after AckWait: keep it short, so that each round
	// takes moments, whichever connection the message first went to.
	if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 256)
	life, stop := context.WithCancel(context.Background())
	defer stop()
	cs, err := tc.Client.Consume(life, "LEAK", "c", func(m jetstream.Msg) error { got <- string(m.Data()); return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	live := func(i int) {
		t.Helper()
		if _, err := tc.Client.PublishToStream(ctx, "leak.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		for m := ""; m != fmt.Sprint(i); { // earlier ones may come again
			m = natstest.Receive(t, got, waitTimeout, "a message on the new connection")
		}
	}
	newConnections(t, tc, 3, live)
	g, h := footprint()
	newConnections(t, tc, 100, live)
	settles(t, "100 new connections under a Consume", g, h)
	live(100) // still consuming
}
