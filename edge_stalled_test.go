package natsclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A hub link that stalls rather than drops (frozen, or slower than the
// client's timeout) gives hub-bound calls no answer at all, where a cut one
// gives "no responders". Neither is a failure of the client's connection to
// its leaf, which answers throughout: the breaker must stay closed.

const (
	stalledClientTimeout = 300 * time.Millisecond
	stalledCallTimeout   = 1500 * time.Millisecond // each hub-bound call's ctx
	stalledLatency       = 3 * time.Second         // far above the client's timeout
)

func TestAFrozenHubLinkNeverTripsTheBreaker(t *testing.T) {
	site := newEdgeSite(t, natsclient.WithTimeout(stalledClientTimeout), natsclient.WithCircuitBreakerThreshold(2))
	link := site.leaf.HubLink()
	testStalledHubLink(t, site, link.Freeze, link.Thaw)
}

func TestASlowHubLinkNeverTripsTheBreaker(t *testing.T) {
	site := newEdgeSite(t, natsclient.WithTimeout(stalledClientTimeout), natsclient.WithCircuitBreakerThreshold(2))
	link := site.leaf.HubLink()
	testStalledHubLink(t, site, func() { link.Latency(stalledLatency) }, func() { link.Latency(0) })
}

func testStalledHubLink(t *testing.T, site *edgeSite, stall, recover func()) {
	// Fifteen hub-bound calls of 1.5 s each, then the recovery.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := site.client
	events := client.StateChanges(ctx)

	store := client.NewKVStore(site.mirror)
	if _, err := store.Put(ctx, "greeting", []byte("before")); err != nil {
		t.Fatalf("Put through the mirror with the link up: %v", err)
	}
	natstest.Eventually(t, waitTimeout, "the mirror has the greeting", func() bool {
		e, err := store.Get(ctx, "greeting")
		return err == nil && string(e.Value()) == "before"
	})
	hubBucket, err := site.hubJS.KeyValueBucket(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	hubStore := site.hubJS.NewKVStore(hubBucket)
	if _, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "LOCAL", Subjects: []string{"local.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := site.hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "CENTRAL", Subjects: []string{"central.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := site.hubJS.PublishToStream(ctx, "central.event", []byte("before")); err != nil {
		t.Fatalf("PublishToStream in the hub's domain with the link up: %v", err)
	}
	got := make(chan *nats.Msg, 16)
	sub, err := client.Subscribe("local.core", func(m *nats.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := client.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	stall()

	// bounded runs a hub-bound call with a ctx of its own and checks that
	// it fails, and does not outlive its ctx by much.
	bounded := func(what string, call func(ctx context.Context) error) error {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, stalledCallTimeout)
		defer cancel()
		start := time.Now()
		err := call(cctx)
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s with the hub link stalled: succeeded; want an error", what)
		}
		if took > stalledCallTimeout+time.Second {
			t.Fatalf("%s with the hub link stalled took %v, past its ctx of %v: %v", what, took, stalledCallTimeout, err)
		}
		t.Logf("%s failed in %v: %v", what, took.Round(time.Millisecond), err)
		return err
	}
	// More hub-bound failures than the breaker's threshold (2), several times over.
	for i := range 3 {
		err := bounded("Put through the mirror", func(ctx context.Context) error {
			_, err := store.Put(ctx, "greeting", []byte("stalled"))
			return err
		})
		// The message may be sitting on the link: its fate is unknown, not refused.
		if !errors.Is(err, natsclient.ErrKVUnknownOutcome) || !strings.Contains(err.Error(), "cfg") {
			t.Fatalf("Put %d through the mirror: %v; want ErrKVUnknownOutcome naming bucket cfg", i, err)
		}
		err = bounded("UpdateJSON through the mirror", func(ctx context.Context) error {
			return store.UpdateJSON(ctx, "counter", func(m map[string]any) error { m["n"] = 1; return nil })
		})
		if errors.Is(err, natsclient.ErrKVUnknownOutcome) || !strings.Contains(err.Error(), "cfg") {
			// It never got as far as writing: reading the origin's revision timed out.
			t.Fatalf("UpdateJSON %d through the mirror: %v; want a timeout naming bucket cfg, not an unknown outcome", i, err)
		}
		err = bounded("Get from the hub's domain", func(ctx context.Context) error {
			_, err := hubStore.Get(ctx, "greeting")
			return err
		})
		if !strings.Contains(err.Error(), "cfg") {
			t.Fatalf("Get %d from the hub's domain: %v; want an error naming bucket cfg", i, err)
		}
		err = bounded("PublishToStream in the hub's domain", func(ctx context.Context) error {
			_, err := site.hubJS.PublishToStream(ctx, "central.event", []byte("stalled"))
			return err
		})
		if !strings.Contains(err.Error(), `domain "hub"`) {
			t.Fatalf("PublishToStream %d in the hub's domain: %v; want an error naming domain hub", i, err)
		}
		err = bounded("KeyValueBucket in the hub's domain", func(ctx context.Context) error {
			_, err := site.hubJS.KeyValueBucket(ctx, "cfg")
			return err
		})
		if !strings.Contains(err.Error(), `domain "hub"`) {
			t.Fatalf("KeyValueBucket %d in the hub's domain: %v; want an error naming domain hub", i, err)
		}
		if st := client.Stats(); st.Breaker != natsclient.BreakerClosed || st.BreakerTrips != 0 || st.ConsecutiveFailures != 0 {
			t.Fatalf("round %d with the hub link stalled: breaker %v, %d trips, %d consecutive failures (last: %v); want closed, nothing counted",
				i, st.Breaker, st.BreakerTrips, st.ConsecutiveFailures, st.LastError)
		}
	}

	// Local traffic goes on.
	if err := client.Publish(ctx, "local.core", []byte("here")); err != nil {
		t.Fatalf("local publish with the hub link stalled: %v", err)
	}
	if m := natstest.Receive(t, got, waitTimeout, "local message"); string(m.Data) != "here" {
		t.Fatalf("local subscriber got %q", m.Data)
	}
	if _, err := client.PublishToStream(ctx, "local.event", []byte("x")); err != nil {
		t.Fatalf("local stream publish with the hub link stalled: %v", err)
	}
	// The mirror answers from what it has: a slow link may have delivered
	// a stalled write to the hub, and its copy back, by now.
	if e, err := store.Get(ctx, "greeting"); err != nil || (string(e.Value()) != "before" && string(e.Value()) != "stalled") {
		t.Fatalf("Get on the mirror with the hub link stalled = %v, %v; want the last mirrored value", e, err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Breaker != natsclient.BreakerClosed || ev.To != natsclient.StateConnected {
				t.Fatalf("event with the hub link stalled: %+v; want none leaving connected with a closed breaker", ev)
			}
			continue
		default:
		}
		break
	}

	// The link recovers and so does everything hub-bound, with no call
	// from the user beyond the ones it makes anyway.
	recover()
	eventuallyOK(t, "Put through the mirror after the link recovered", func() error {
		cctx, cancel := context.WithTimeout(ctx, stalledCallTimeout)
		defer cancel()
		_, err := store.Put(cctx, "greeting", []byte("after"))
		return err
	})
	natstest.Eventually(t, waitTimeout, "the mirror has the new greeting", func() bool {
		e, err := store.Get(ctx, "greeting")
		return err == nil && string(e.Value()) == "after"
	})
	if err := store.UpdateJSON(ctx, "counter", func(m map[string]any) error { m["n"] = 2; return nil }); err != nil {
		t.Fatalf("UpdateJSON after the link recovered: %v", err)
	}
	if _, err := site.hubJS.PublishToStream(ctx, "central.event", []byte("after")); err != nil {
		t.Fatalf("PublishToStream in the hub's domain after the link recovered: %v", err)
	}
	if e, err := hubStore.Get(ctx, "greeting"); err != nil || string(e.Value()) != "after" {
		t.Fatalf("hub's greeting after the link recovered = %v, %v; want after", e, err)
	}
	if st := client.Stats(); st.BreakerTrips != 0 {
		t.Fatalf("breaker tripped %d times; want never", st.BreakerTrips)
	}
}
