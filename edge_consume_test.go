package natsclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// resumeTimeout bounds how long a consumer or watcher across the leaf link
// may take to notice that the link came back, generously: the promise, 2 s,
// is TestDomainConsumeAndWatchResumeWithinTwoSecondsOfTheHubLink's.
const resumeTimeout = time.Minute

// A consumer and a watcher of the hub's, through the leaf and the hub's
// domain, receive what the hub stores, and after the link was cut and
// restored they resume by themselves, with nothing lost.
func TestDomainConsumeAndWatchResumeAfterTheHubLinkReturns(t *testing.T) {
	site := newEdgeSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	feed := newCentralFeed(t, ctx, site)
	hubJS, hubKV, got, w := feed.hubJS, feed.hubKV, feed.got, feed.w
	publish := func(data string) {
		t.Helper()
		if _, err := hubJS.Publish(ctx, "central.event", []byte(data)); err != nil {
			t.Fatalf("publish %q at the hub: %v", data, err)
		}
	}
	put := func(value string) {
		t.Helper()
		if _, err := hubKV.Put(ctx, "greeting", []byte(value)); err != nil {
			t.Fatalf("put %q at the hub: %v", value, err)
		}
	}
	watched := func(want string) {
		t.Helper()
		deadline := time.After(resumeTimeout)
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					t.Fatalf("watcher ended waiting for %q", want)
				}
				if e != nil && string(e.Value()) == want {
					return
				}
			case <-deadline:
				t.Fatalf("watcher did not see %q within %v", want, resumeTimeout)
			}
		}
	}
	consumed := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("consumed %q, want %q", m, want)
			}
		case <-time.After(resumeTimeout):
			t.Fatalf("consumer did not deliver %q within %v", want, resumeTimeout)
		}
	}

	watched("hello")
	publish("one")
	consumed("one")
	put("w1")
	watched("w1")

	// "one" is acknowledged after its handler returned: the acknowledgement
	// must reach the hub before the cut, or "one" comes again after the link
	// returns (JetStream's at-least-once, on a loaded machine), not "two".
	natstest.Eventually(t, waitTimeout, `the hub has the acknowledgement of "one"`, func() bool {
		c, err := hubJS.Consumer(ctx, "CENTRAL", "edge-reader")
		return err == nil && c.CachedInfo().NumAckPending == 0
	})
	site.leaf.HubLink().Cut()
	site.leaf.WaitForHubLink(false)
	// The hub drops the pull request of a consumer it lost sight of: what
	// follows needs a new one, which only the client can send.
	natstest.Eventually(t, waitTimeout, "the hub drops the cut-off consumer's pull request", func() bool {
		c, err := hubJS.Consumer(ctx, "CENTRAL", "edge-reader")
		return err == nil && c.CachedInfo().NumWaiting == 0
	})
	publish("two")
	put("w2")
	site.leaf.HubLink().Restore()
	site.leaf.WaitForHubLink(true)

	start := time.Now()
	consumed("two")
	t.Logf("consumer resumed %v after the link returned", time.Since(start).Round(time.Millisecond))
	watched("w2")
	t.Logf("watcher resumed %v after the link returned", time.Since(start).Round(time.Millisecond))
	publish("three")
	consumed("three")
	put("w3")
	watched("w3")
	if st := site.client.Stats(); st.Breaker != natsclient.BreakerClosed || st.BreakerTrips != 0 {
		t.Fatalf("breaker %v after %d trips; want closed, never tripped", st.Breaker, st.BreakerTrips)
	}
}

// centralFeed is what the domain consume and watch tests share: stream
// CENTRAL at the hub, a producer there on a connection of its own (it keeps
// working while the site is cut off), and the site's consumer "edge-reader"
// of CENTRAL and watcher of cfg's key "greeting", both through
// Domain("hub"). The consumer and the watcher stop when the test ends.
type centralFeed struct {
	hubJS jetstream.JetStream // the producer's, in domain hub
	hubKV jetstream.KeyValue  // bucket cfg, through hubJS
	got   chan string         // the data of what edge-reader consumed
	w     jetstream.KeyWatcher
}

func newCentralFeed(t *testing.T, ctx context.Context, site *edgeSite) *centralFeed {
	t.Helper()
	if _, err := site.hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "CENTRAL", Subjects: []string{"central.>"}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(site.hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := &centralFeed{got: make(chan string, 16)}
	if f.hubJS, err = jetstream.NewWithDomain(nc, "hub"); err != nil {
		t.Fatal(err)
	}
	if f.hubKV, err = f.hubJS.KeyValue(ctx, "cfg"); err != nil {
		t.Fatal(err)
	}
	cons, err := site.hubJS.Consume(ctx, "CENTRAL", "edge-reader", func(m jetstream.Msg) error {
		f.got <- string(m.Data())
		return nil
	})
	if err != nil {
		t.Fatalf("Consume through Domain(hub): %v", err)
	}
	t.Cleanup(cons.Stop)
	hubBucket, err := site.hubJS.KeyValueBucket(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if f.w, err = site.hubJS.NewKVStore(hubBucket).Watch(ctx, "greeting"); err != nil {
		t.Fatalf("Watch through Domain(hub): %v", err)
	}
	t.Cleanup(func() { _ = f.w.Stop() })
	return f
}
