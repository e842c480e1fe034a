package natstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// partitionWait bounds an election or a reconnection of routes on a loaded
// machine.
const partitionWait = 60 * time.Second

// publishUntil publishes to subject through url until the stream
// acknowledges, and fails the test after partitionWait.
func publishUntil(t *testing.T, url, subject string) *jetstream.PubAck {
	t.Helper()
	nc := dial(t, url)
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(partitionWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ack, err := js.Publish(ctx, subject, []byte("x"))
		cancel()
		if err == nil {
			return ack
		}
		if time.Now().After(deadline) {
			t.Fatalf("no acknowledged publish to %s through %s within %v: %v", subject, url, partitionWait, err)
		}
	}
}

func TestIsolateCutsOneMemberOffFromTheOthersUntilHeal(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	nc := dial(t, c.URLs())
	js, err := nc.JetStream(nats.MaxWait(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Place(func() error {
		_, err := js.AddStream(&nats.StreamConfig{Name: "P", Subjects: []string{"p"}, Replicas: 3})
		return err
	}); err != nil {
		t.Fatalf("add R3 stream: %v", err)
	}
	alone := c.WaitForStreamLeader("$G", "P")
	majority := (alone + 1) % 3

	c.Isolate(alone)
	// The other two elect a leader of their own and accept writes...
	publishUntil(t, c.Server(majority).URL(), "p")
	// ...while the isolated member, still reachable by clients, cannot make
	// a quorum: had a route slipped past the proxies, this would be stored.
	lone := dial(t, c.Server(alone).URL())
	ljs, err := jetstream.New(lone.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = ljs.Publish(ctx, "p", []byte("minority"))
	cancel()
	if err == nil {
		t.Fatalf("a publish through the isolated member %d was acknowledged", alone)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Logf("publish through the isolated member failed with: %v", err)
	}

	c.Heal()
	ack := publishUntil(t, c.Server(alone).URL(), "p")
	if ack.Sequence != 2 {
		t.Fatalf("after Heal, a publish through the once isolated member got sequence %d, want 2 (the minority's write must not count)", ack.Sequence)
	}
}

func TestKillEndsTheServerAndStartBringsItBackWithItsStore(t *testing.T) {
	srv := natstest.NewServer(t, natstest.WithJetStream())
	nc := dial(t, srv.URL())
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "K", Subjects: []string{"k"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	natstest.Receive(t, nc.disconnected, wait, "disconnect after Kill")
	if srv.Running() {
		t.Fatal("Running() after Kill")
	}
	srv.Start()
	natstest.Receive(t, nc.reconnected, wait, "reconnect after Start")
	st, err := js.Stream(ctx, "K")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages after Kill and Start, want 1", n)
	}
}
