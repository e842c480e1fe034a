package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// The outbox at the edge (issue 18): a service on a leaf node (JetStream in
// domain "edge") queues its readings in an outbox, and the stream that
// captures them lives on the hub (domain "hub"), reached through the leaf's
// link. The link is cut three times: once for 30s with 1,000 messages
// published during the cut, then twice briefly. While it is cut nothing
// is dead-lettered and Stats says forwarding waits; after the last restore
// Flush returns once the hub's stream, read back by plain nats.go, holds
// every message once, in publish order, under its outbox id.
func TestEdgeOutboxRidesOutHubLinkCuts(t *testing.T) {
	const (
		longCut    = 30 * time.Second
		longCutN   = 1000
		shortCut   = 2 * time.Second
		shortCutN  = 100
		linkUpEach = 50 // published between cuts, with the link up
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	hub := natstest.NewServer(t, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
	leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
	leaf.WaitForHubLink(true)
	// An uplink's latency: a backlog takes a while to drain, and a cut can
	// fall while it does.
	leaf.HubLink().Latency(25 * time.Millisecond)
	hubJS := natstest.JetStream(t, hub.URL())
	if _, err := hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "READINGS", Subjects: []string{"h.>"}}); err != nil {
		t.Fatal(err)
	}

	client := newClient(t, leaf.URL(),
		natsclient.WithReconnectWait(50*time.Millisecond),
		natsclient.WithMaxBackoff(time.Second),
		natsclient.WithMaxReconnects(-1))
	if err := client.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.Open(client, filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ob.Close(context.Background()); err != nil {
			t.Errorf("close the outbox: %v", err)
		}
	}()

	var want []string // data of each message in publish order; ids beside it
	ids := map[string]string{}
	publish := func(phase string, n int, spread time.Duration) {
		t.Helper()
		// Spread over the cut, as readings come: a tick paces the load.
		tick := time.NewTicker(max(spread/time.Duration(n), time.Millisecond))
		defer tick.Stop()
		for i := range n {
			data := fmt.Sprintf("%s-%d", phase, i)
			id, err := ob.Publish(ctx, "h.reading", []byte(data))
			if err != nil {
				t.Fatalf("publish %s: %v", data, err)
			}
			want = append(want, data)
			ids[data] = id
			<-tick.C
		}
	}
	noDeadLetters := func(phase string) {
		t.Helper()
		if st := ob.Stats(); st.DeadLettered != 0 {
			t.Fatalf("%s: %d messages dead-lettered (stats %+v)", phase, st.DeadLettered, st)
		}
	}

	publish("up-0", linkUpEach, 0)
	for cut, c := range []struct {
		length time.Duration
		n      int
	}{{longCut, longCutN}, {shortCut, shortCutN}, {shortCut, shortCutN}} {
		phase := fmt.Sprintf("cut-%d", cut+1)
		t.Logf("%s begins with %d messages pending", phase, ob.Stats().Pending)
		leaf.HubLink().Cut()
		leaf.WaitForHubLink(false)
		start := time.Now()
		publish(phase, c.n, c.length)
		natstest.Eventually(t, waitTimeout, phase+": Stats says forwarding waits", func() bool {
			st := ob.Stats()
			return st.Waiting != "" && errors.Is(st.LastError, natsclient.ErrUnreachable) || st.DeadLettered > 0
		})
		noDeadLetters(phase)
		if rest := c.length - time.Since(start); rest > 0 {
			time.Sleep(rest) // the cut lasts its length: the outage is the point, not a wait for an event
		}
		noDeadLetters(phase)
		t.Logf("%s: %v, %d published during it; stats %+v", phase, time.Since(start).Round(time.Millisecond), c.n, ob.Stats())
		forwarded := ob.Stats().Forwarded
		leaf.HubLink().Restore()
		leaf.WaitForHubLink(true)
		publish(fmt.Sprintf("up-%d", cut+1), linkUpEach, 0)
		// The next cut falls while the backlog drains: with a window on the
		// wire, as the link returns and as it goes.
		backlog := uint64(ob.Stats().Pending)
		natstest.Eventually(t, waitTimeout, phase+": forwarding resumes", func() bool { return ob.Stats().Forwarded > forwarded+min(200, backlog/2) })
	}

	restored := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer fcancel()
	if err := ob.Flush(fctx); err != nil {
		t.Fatalf("flush after the last restore: %v (stats %+v)", err, ob.Stats())
	}
	t.Logf("flushed %v after the last restore", time.Since(restored).Round(time.Millisecond))
	noDeadLetters("after the cuts")
	if st := ob.Stats(); st.Pending != 0 || st.Waiting != "" {
		t.Errorf("after Flush: %+v; want nothing pending, not waiting", st)
	}

	got := natstest.StreamMsgs(t, ctx, hubJS, "READINGS")
	if len(got) != len(want) {
		t.Errorf("the hub's stream holds %d messages, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if string(got[i].Data) != want[i] || got[i].Header.Get(jetstream.MsgIDHeader) != ids[want[i]] {
			t.Fatalf("message %d of the hub's stream is %q (id %s), want %q (id %s)", i+1,
				got[i].Data, got[i].Header.Get(jetstream.MsgIDHeader), want[i], ids[want[i]])
		}
	}
}
