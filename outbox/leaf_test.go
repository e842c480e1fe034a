package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// The edge deployment (issue 18): the client connects to a leaf node whose
// JetStream has a domain of its own, and the stream capturing h.> lives on
// the hub, reached through the leaf's link. While the link is cut nobody
// answers the forwarder's publishes and the leaf's JetStream knows no stream
// for h.>: forwarding waits and says so, nothing is dead-lettered, and once
// the link returns Flush returns when every message is in the hub's stream,
// once, in order.
func TestLeafOutboxWaitsOutACutHubLink(t *testing.T) {
	hub := natstest.NewServer(t, natstest.WithLeafNodes(), natstest.WithJetStreamDomain("hub"))
	leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
	leafCut(t, leaf, hub.URL(), 1)
}

// The same with a hub cluster, the stream replicated on all three members;
// the leaf may link to any of them.
func TestLeafOutboxOfAHubClusterWaitsOutACutHubLink(t *testing.T) {
	hub := natstest.NewCluster(t, 3, natstest.WithLeafNodes(), natstest.WithJetStreamDomain("hub"))
	leaf := hub.NewLeaf(t, natstest.WithJetStreamDomain("edge"))
	leafCut(t, leaf, hub.URLs(), 3)
}

func leafCut(t *testing.T, leaf *natstest.Server, hubURL string, replicas int) {
	leaf.WaitForHubLink(true)
	createHubStream(t, hubURL, replicas)
	client := natstest.ConnectTestClient(t, leaf).Client
	ob := openOutbox(t, client, outboxPath(t))

	// With the link up, messages reach the hub (interest takes a moment to
	// cross a new link: the forwarder waits for it, as for the cut).
	want := publishN(t, ob, "h.data", "before", 5)
	flush(t, ob)

	leaf.HubLink().Cut()
	leaf.WaitForHubLink(false)
	want = append(want, publishN(t, ob, "h.data", "during", 50)...)
	// The forwarder has met the cut (Waiting is set only when a round met
	// it); by then the unfixed one had dead-lettered the head of the queue.
	st := eventuallyStats(t, ob, "forwarding waits for the hub", func(st outbox.Stats) bool {
		return st.Waiting != "" || st.DeadLettered > 0
	})
	if st.DeadLettered > 0 {
		t.Fatalf("while the link is cut: %d messages dead-lettered (stats %+v)", st.DeadLettered, st)
	}
	if !errors.Is(st.LastError, natsclient.ErrUnreachable) || !strings.Contains(st.Waiting, `"edge"`) {
		t.Errorf("while the link is cut: Waiting %q, LastError %v; want the leaf's domain named and ErrUnreachable", st.Waiting, st.LastError)
	}
	// A few more rounds against the cut link (each sends the head alone,
	// see forwarder.round): none dead-letters.
	resent := st.Resent
	eventuallyStats(t, ob, "forwarding tries again", func(st outbox.Stats) bool { return st.Resent >= resent+3 })
	if st := ob.Stats(); st.DeadLettered != 0 || st.Pending != 50 || st.Waiting == "" {
		t.Fatalf("while the link is cut: %+v; want 50 pending, none dead-lettered, Waiting set", st)
	}

	leaf.HubLink().Restore()
	leaf.WaitForHubLink(true)
	flush(t, ob)
	checkStream(t, hubURL, "HUB", want)
	if st := ob.Stats(); st.DeadLettered != 0 || st.Pending != 0 || st.Waiting != "" {
		t.Errorf("after the link returned: %+v; want nothing pending or dead-lettered, not waiting", st)
	}
	if dead, err := ob.DeadLetters(natstest.Context(t, testTimeout)); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %+v, %v; want none", dead, err)
	}
}

// createHubStream creates stream HUB, capturing h.>, on the hub through a
// plain connection of its own.
func createHubStream(t *testing.T, url string, replicas int) {
	t.Helper()
	js := natstest.JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HUB", Subjects: []string{"h.>"}, Replicas: replicas}); err != nil {
		t.Fatalf("create stream HUB on the hub: %v", err)
	}
}

// eventuallyStats polls the outbox's figures until ok holds: no event tells
// when they change. It fails the test after waitTimeout.
func eventuallyStats(t *testing.T, ob *outbox.Outbox, what string, ok func(outbox.Stats) bool) outbox.Stats {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := ob.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (stats %+v)", what, waitTimeout, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
