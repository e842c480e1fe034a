package natsclient_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishToStream from a leaf node to a stream on the hub, while the leaf's
// link to the hub is cut: nobody can store the message, and the error says
// so at once, matching ErrUnreachable as KV writes do, not "no stream
// captures subject" (the leaf's own JetStream knows no stream for it, but it
// has a domain: a stream beyond its link may). For a client in the leaf's
// domain and one in the default domain alike.
func TestPublishToStreamThroughACutHubLinkIsUnreachable(t *testing.T) {
	hub := natstest.NewServer(t, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
	leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
	leaf.WaitForHubLink(true)
	// A minute's timeout: waiting it out, rather than knowing the answer,
	// fails the test.
	clients := map[string]*natsclient.Client{
		"domain edge":    edgeClient(t, leaf, natsclient.WithTimeout(time.Minute)),
		"default domain": natstest.ConnectTestClient(t, leaf, natsclient.WithTimeout(time.Minute)).Client,
	}
	ctx := natstest.Context(t, waitTimeout)
	hubJS, err := clients["domain edge"].Domain("hub")
	if err != nil {
		t.Fatal(err)
	}
	eventuallyOK(t, "create stream HUB in the hub's domain", func() error {
		_, err := hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "HUB", Subjects: []string{"h.>"}})
		return err
	})
	for name, c := range clients {
		eventuallyOK(t, name+": publish to the hub's stream", func() error {
			_, err := c.PublishToStream(ctx, "h.data", []byte("up"))
			return err
		})
	}

	leaf.HubLink().Cut()
	leaf.WaitForHubLink(false)
	for name, c := range clients {
		start := time.Now()
		_, err := c.PublishToStream(ctx, "h.data", []byte("cut"))
		took := time.Since(start)
		if !errors.Is(err, natsclient.ErrUnreachable) || strings.Contains(err.Error(), "no stream captures subject") {
			t.Errorf("%s: PublishToStream with the hub link cut: %v; want ErrUnreachable", name, err)
		}
		if took > 5*time.Second {
			t.Errorf("%s: PublishToStream took %v to fail; the answer was known at once", name, took)
		}
		if st := c.Stats(); st.Breaker != natsclient.BreakerClosed || st.BreakerTrips != 0 {
			t.Errorf("%s: breaker %v after %d trips; an unreachable hub is not the client's connection failing", name, st.Breaker, st.BreakerTrips)
		}
		t.Logf("%s: refused in %v: %v", name, took, err)
	}

	leaf.HubLink().Restore()
	leaf.WaitForHubLink(true)
	for name, c := range clients {
		eventuallyOK(t, name+": publish once the link returned", func() error {
			_, err := c.PublishToStream(ctx, "h.data", []byte("back"))
			return err
		})
	}
}
