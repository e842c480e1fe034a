package capture_test

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient/internal/capture"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The rule, against the servers it reasons about: what nats-server's
// JetStream says of a subject, and whether that is final, on a plain server,
// on a server without JetStream, and on either side of a leaf node link
// between two domains, the link up and cut.
func TestLookupAgainstRealServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("plain server", func(t *testing.T) {
		js := connect(t, natstest.NewServer(t, natstest.WithJetStream()).URL())
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "A", Subjects: []string{"a.>"}}); err != nil {
			t.Fatal(err)
		}
		expect(t, capture.Lookup(ctx, js, "a.x"), capture.Captured)
		expect(t, capture.Lookup(ctx, js, "b.x"), capture.Nowhere)
	})
	t.Run("no JetStream", func(t *testing.T) {
		js := connect(t, natstest.NewServer(t).URL())
		expect(t, capture.Lookup(ctx, js, "a.x"), capture.NoJetStream)
	})
	t.Run("leaf and hub in domains", func(t *testing.T) {
		hub := natstest.NewServer(t, natstest.WithLeafNodes(), natstest.WithJetStreamDomain("hub"))
		leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
		leaf.WaitForHubLink(true)
		hubJS, leafJS := connect(t, hub.URL()), connect(t, leaf.URL())
		if _, err := hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "H", Subjects: []string{"h.>"}}); err != nil {
			t.Fatal(err)
		}
		expect(t, capture.Lookup(ctx, hubJS, "h.x"), capture.Captured)
		if f := expect(t, capture.Lookup(ctx, hubJS, "z.x"), capture.Beyond); f.Domain != "hub" {
			t.Errorf("hub: domain %q, want hub", f.Domain)
		}
		// The leaf's JetStream never knows the hub's streams, link up or
		// down: it has a domain, so that is never final.
		for _, cut := range []bool{false, true} {
			if cut {
				leaf.HubLink().Cut()
				leaf.WaitForHubLink(false)
			}
			if f := expect(t, capture.Lookup(ctx, leafJS, "h.x"), capture.Beyond); f.Domain != "edge" {
				t.Errorf("leaf (link cut: %v): domain %q, want edge", cut, f.Domain)
			}
		}
	})
	t.Run("leaf without JetStream", func(t *testing.T) {
		hub := natstest.NewServer(t, natstest.WithLeafNodes(), natstest.WithJetStream())
		leaf := natstest.NewLeaf(t, hub)
		leaf.WaitForHubLink(true)
		// nats-server denies $JS.API across the link: nobody answers the
		// question, link up or not.
		expect(t, capture.Lookup(ctx, connect(t, leaf.URL()), "h.x"), capture.NoJetStream)
	})
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func expect(t *testing.T, f capture.Finding, want capture.Verdict) capture.Finding {
	t.Helper()
	if f.Verdict != want {
		t.Errorf("verdict %v (%+v), want %v", f.Verdict, f, want)
	}
	return f
}
