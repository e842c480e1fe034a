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

// edge starts a hub in domain "hub" and a leaf in domain "edge" connected to
// it, and waits for the link.
func edge(t *testing.T) (hub, leaf *natstest.Server) {
	t.Helper()
	hub = natstest.NewServer(t, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
	leaf = natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
	leaf.WaitForHubLink(true)
	return hub, leaf
}

// hubStream asks the hub's JetStream, through the leaf, for stream ORDERS,
// retrying "no responders" while interest crosses a new link.
func hubStream(t *testing.T, js jetstream.JetStream) error {
	t.Helper()
	var err error
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = js.Stream(ctx, "ORDERS")
		cancel()
		if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func TestLeafReachesHubDomainAndKeepsItsOwn(t *testing.T) {
	hub, leaf := edge(t)
	ctx := context.Background()

	hc := dial(t, hub.URL())
	hubJS, err := jetstream.New(hc.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatalf("create stream on hub: %v", err)
	}

	lc := dial(t, leaf.URL())
	local, err := jetstream.New(lc.Conn)
	if err != nil {
		t.Fatal(err)
	}
	info, err := local.AccountInfo(ctx)
	if err != nil {
		t.Fatalf("leaf's own JetStream: %v", err)
	}
	if info.Domain != "edge" {
		t.Fatalf("leaf's JetStream domain = %q, want edge", info.Domain)
	}
	remote, err := jetstream.NewWithDomain(lc.Conn, "hub")
	if err != nil {
		t.Fatal(err)
	}
	if err := hubStream(t, remote); err != nil {
		t.Fatalf("hub's stream through the leaf: %v", err)
	}

	// Core traffic crosses the link too.
	sub, err := hc.SubscribeSync("site.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := hc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pollPublish(lc.Conn, sub, "site.hello"); err != nil {
		t.Fatalf("leaf → hub message: %v", err)
	}

	leaf.HubLink().Cut()
	leaf.WaitForHubLink(false)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = remote.Stream(cctx, "ORDERS")
	cancel()
	if err == nil {
		t.Fatal("hub's stream reachable through a cut link")
	}
	if _, err := local.AccountInfo(ctx); err != nil {
		t.Fatalf("leaf's own JetStream while the hub link is cut: %v", err)
	}

	leaf.HubLink().Restore()
	leaf.WaitForHubLink(true)
	if err := hubStream(t, remote); err != nil {
		t.Fatalf("hub's stream after Restore: %v", err)
	}

	// A hub that restarts (on another port, in another container) keeps its
	// leaves behind the same hub link.
	hub.Stop()
	leaf.WaitForHubLink(false)
	hub.Start()
	leaf.WaitForHubLink(true)
	if err := hubStream(t, remote); err != nil {
		t.Fatalf("hub's stream after the hub restarted: %v", err)
	}
}

func TestLeafOfClusterFollowsLinkFaults(t *testing.T) {
	c := natstest.NewCluster(t, 3, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
	leaf := c.NewLeaf(t, natstest.WithJetStreamDomain("edge"))
	leaf.WaitForHubLink(true)

	lc := dial(t, leaf.URL())
	remote, err := jetstream.NewWithDomain(lc.Conn, "hub")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var info *jetstream.AccountInfo
	for info == nil {
		if info, err = remote.AccountInfo(ctx); ctx.Err() != nil {
			t.Fatalf("hub cluster's JetStream through the leaf: %v", err)
		}
	}
	if info.Domain != "hub" {
		t.Fatalf("domain = %q, want hub", info.Domain)
	}

	leaf.HubLink().Cut()
	leaf.WaitForHubLink(false)
	leaf.HubLink().Restore()
	leaf.WaitForHubLink(true)
}

// pollPublish publishes on subject from the leaf until sub, on the hub,
// receives it: interest takes a moment to cross a new link.
func pollPublish(nc *nats.Conn, sub *nats.Subscription, subject string) error {
	deadline := time.Now().Add(wait)
	for {
		if err := nc.Publish(subject, []byte("x")); err != nil {
			return err
		}
		if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return err
		}
	}
}
