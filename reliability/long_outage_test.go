package reliability_test

import (
	"errors"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Story 5: a long outage with WithMaxReconnects(0). nats.go gives its
// connection up at once; the supervisor keeps probing through the outage,
// dials a new connection when the server returns, and everything the user
// holds (a subscription, a Consume, a stream handle, a bucket handle, a
// KVStore) works again on it.
func TestLongOutage(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithJetStream(), natstest.WithClientOptions(
		natsclient.WithMaxReconnects(0),
		natsclient.WithCircuitBreakerThreshold(2),
	))
	c := tc.Client
	ctx := natstest.Context(t, testTimeout)

	stream, err := c.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := c.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "settings"})
	if err != nil {
		t.Fatal(err)
	}
	kv := c.NewKVStore(bucket)
	core := make(chan string, 16)
	if _, err := c.Subscribe("alerts.>", func(m *nats.Msg) { core <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	consumed := make(chan string, 16)
	consumption, err := c.Consume(ctx, "ORDERS", "worker", func(m jetstream.Msg) error {
		consumed <- string(m.Data())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer consumption.Stop()

	everything := func(phase string) {
		t.Helper()
		if err := c.Publish(ctx, "alerts.x", []byte(phase)); err != nil {
			t.Fatalf("%s: Publish: %v", phase, err)
		}
		natstest.Await(t, core, waitTimeout, phase+": subscription message", func(s string) bool { return s == phase })
		if _, err := c.PublishToStream(ctx, "orders.new", []byte(phase)); err != nil {
			t.Fatalf("%s: PublishToStream: %v", phase, err)
		}
		natstest.Await(t, consumed, waitTimeout, phase+": consumed stream message", func(s string) bool { return s == phase })
		if err := kv.UpdateJSON(ctx, "counter", increment); err != nil {
			t.Fatalf("%s: KVStore.UpdateJSON: %v", phase, err)
		}
		if _, err := bucket.PutString(ctx, "phase", phase); err != nil {
			t.Fatalf("%s: bucket Put: %v", phase, err)
		}
		if e, err := bucket.Get(ctx, "phase"); err != nil || string(e.Value()) != phase {
			t.Fatalf("%s: bucket Get = %v, %v", phase, e, err)
		}
	}
	everything("before")

	events := recordEvents(t, c)
	tc.Server.Stop()
	natstest.Await(t, events, waitTimeout, "connection lost", natstest.ToState(natsclient.StateReconnecting))
	// A long outage: the breaker opens, probes while the server is still
	// away, and opens again. The client keeps trying all along.
	natstest.Await(t, events, waitTimeout, "breaker open", natstest.BreakerIs(natsclient.BreakerOpen))
	natstest.Await(t, events, waitTimeout, "probe during the outage", natstest.BreakerIs(natsclient.BreakerHalfOpen))
	natstest.Await(t, events, waitTimeout, "breaker open again", natstest.BreakerIs(natsclient.BreakerOpen))
	if _, err := c.PublishToStream(ctx, "orders.new", []byte("lost")); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("PublishToStream during the outage = %v, want ErrCircuitOpen", err)
	}
	if err := kv.UpdateJSON(ctx, "counter", increment); !errors.Is(err, natsclient.ErrCircuitOpen) {
		t.Fatalf("UpdateJSON during the outage = %v, want ErrCircuitOpen", err)
	}

	tc.Server.Start()
	natstest.Await(t, events, waitTimeout, "connected again", natstest.ToState(natsclient.StateConnected))
	if n := c.Stats().Connections; n != 2 {
		t.Fatalf("Stats().Connections = %d, want 2: nats.go gave its connection up and a new one was dialled", n)
	}
	everything("after")

	var counter struct{ N int }
	if _, err := kv.GetJSON(ctx, "counter", &counter); err != nil || counter.N != 2 {
		t.Fatalf("counter = %+v, %v; want 2 (one update before, one after; none during)", counter, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream handle after the outage: %v", err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2", info.State.Msgs)
	}
}

// increment adds one to the object's N.
func increment(obj map[string]any) error {
	n, _ := obj["N"].(float64)
	obj["N"] = n + 1
	return nil
}
