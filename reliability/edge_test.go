package reliability_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// The edge story (issue 9): a service on a leaf node publishes to a stream
// of its site and updates a key of the hub's bucket through the site's
// mirror, while the leaf's link to the hub is cut and restored three times.
// Local publishing never fails and the breaker never opens; every hub write
// returned nil and was applied exactly once, or returned an error and was
// applied at most once (not at all, unless its outcome was reported
// unknown); after the last restore the mirror converges to the hub's value.
//
// The cuts last 30s each; CI runs them shorter. NATSCLIENT_EDGE_CUT
// sets the length (NATSCLIENT_EDGE_CUT=30s for the full story).
const edgeCutDefault = 3 * time.Second

// mirrorConverges bounds the wait for the mirror to catch up after the last
// restore: nats-server's own retry of a mirror (30s) and then some.
const mirrorConverges = 90 * time.Second

func edgeCut(t *testing.T) time.Duration {
	t.Helper()
	env := os.Getenv("NATSCLIENT_EDGE_CUT")
	if env == "" {
		return edgeCutDefault
	}
	d, err := time.ParseDuration(env)
	if err != nil || d <= 0 {
		t.Fatalf("NATSCLIENT_EDGE_CUT=%q: want a positive duration such as 30s", env)
	}
	return d
}

func TestEdgeSiteRidesOutHubLinkCuts(t *testing.T) {
	cut := edgeCut(t)
	t.Logf("hub link cut 3 times for %v each (NATSCLIENT_EDGE_CUT)", cut)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+6*cut)
	defer cancel()

	hub := natstest.NewServer(t, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
	leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
	leaf.WaitForHubLink(true)
	client := newClient(t, leaf.URL(),
		natsclient.WithJetStreamDomain("edge"),
		natsclient.WithReconnectWait(50*time.Millisecond),
		natsclient.WithMaxBackoff(time.Second),
		natsclient.WithMaxReconnects(-1))
	events := recordEvents(t, client)
	if err := client.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	hubJS, err := client.Domain("hub")
	if err != nil {
		t.Fatal(err)
	}
	var origin jetstream.KeyValue
	natstest.Eventually(t, waitTimeout, "bucket cfg created in the hub's domain", func() bool {
		origin, err = hubJS.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "cfg", History: 5})
		return err == nil
	})
	mirror, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket: "cfg", Mirror: &jetstream.StreamSource{Name: "cfg", Domain: "hub"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "SITE", Subjects: []string{"site.>"}}); err != nil {
		t.Fatal(err)
	}
	store := client.NewKVStore(mirror)

	var (
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		published atomic.Int64
		localErr  = make(chan error, 1)
		w         = hubWriter{store: store, wrote: make(chan struct{}, 1), failed: map[string]error{}}
	)
	wg.Go(func() { // the site's own traffic
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := client.PublishToStream(ctx, "site.reading", []byte("42")); err != nil {
				select {
				case localErr <- err:
				default:
				}
				return
			}
			published.Add(1)
		}
	})
	wg.Go(func() { w.run(ctx, stop) })

	for i := range 3 {
		for range 5 {
			w.awaitSuccess(t, fmt.Sprintf("hub writes before cut %d", i+1))
		}
		leaf.HubLink().Cut()
		leaf.WaitForHubLink(false)
		select {
		case <-time.After(cut): // the length of the outage is the scenario, not a wait for an event
		case err := <-localErr:
			t.Fatalf("local publish failed during cut %d: %v", i+1, err)
		}
		leaf.HubLink().Restore()
		leaf.WaitForHubLink(true)
		w.awaitSuccess(t, fmt.Sprintf("a hub write after cut %d", i+1)) // no call but the writer's own
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-localErr:
		t.Fatalf("local publish failed: %v", err)
	default:
	}

	// Local publishing: every publish that returned nil is in the stream.
	st, err := client.Stream(ctx, "SITE")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(info.State.Msgs) != published.Load() {
		t.Fatalf("stream SITE holds %d messages, %d publishes returned nil", info.State.Msgs, published.Load())
	}

	// The breaker never opened.
	if s := client.Stats(); s.BreakerTrips != 0 {
		t.Fatalf("breaker tripped %d times", s.BreakerTrips)
	}
drain:
	for {
		select {
		case ev := <-events:
			if ev.Breaker != natsclient.BreakerClosed {
				t.Fatalf("breaker left closed: %+v", ev)
			}
		default:
			break drain
		}
	}

	// Hub writes: exactly once for nil, at most once otherwise.
	entry, err := origin.Get(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	if err := json.Unmarshal(entry.Value(), &ops); err != nil {
		t.Fatal(err)
	}
	applied := map[string]int{}
	for _, id := range ops {
		applied[id]++
	}
	for id, n := range applied {
		if n > 1 {
			t.Errorf("write %s applied %d times", id, n)
		}
	}
	for _, id := range w.succeeded {
		if applied[id] != 1 {
			t.Errorf("write %s returned nil but was applied %d times", id, applied[id])
		}
	}
	for id, err := range w.failed {
		if applied[id] > 0 && !errors.Is(err, natsclient.ErrKVUnknownOutcome) {
			t.Errorf("write %s was applied but returned %v", id, err)
		}
	}
	t.Logf("hub writes: %d succeeded, %d failed (%d unreachable, %d unknown outcome); %d local publishes",
		len(w.succeeded), len(w.failed), w.count(natsclient.ErrUnreachable), w.count(natsclient.ErrKVUnknownOutcome), published.Load())
	if len(w.succeeded) == 0 || w.count(natsclient.ErrUnreachable) == 0 {
		t.Fatalf("the story did not happen: %d hub writes succeeded, %d met the cut", len(w.succeeded), w.count(natsclient.ErrUnreachable))
	}

	// The mirror converges to the hub's value. It may take a while: a mirror
	// whose request to its origin went out while the link was down waits up
	// to 30s (nats-server's srcConsumerWaitTime) before it asks again.
	deadline := time.Now().Add(mirrorConverges)
	for {
		e, err := store.Get(ctx, "ops")
		if err == nil && e.Revision() == entry.Revision() && string(e.Value()) == string(entry.Value()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror has not converged to the hub's ops (revision %d) within %v: last read %v, %v",
				entry.Revision(), mirrorConverges, e, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hubWriter appends its write's own ID to the list under key "ops" in the
// hub's bucket, through the mirror, one write every 20ms.
type hubWriter struct {
	store     *natsclient.KVStore
	wrote     chan struct{} // a write returned nil
	succeeded []string
	failed    map[string]error
	mu        sync.Mutex // guards the two above for count and the final check
}

func (w *hubWriter) run(ctx context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		id := fmt.Sprintf("w%d", i)
		_, err := natsclient.UpdateJSONAs(ctx, w.store, "ops", func(ops *[]string) error {
			*ops = append(*ops, id)
			return nil
		})
		w.mu.Lock()
		if err == nil {
			w.succeeded = append(w.succeeded, id)
		} else {
			w.failed[id] = err
		}
		w.mu.Unlock()
		if err == nil {
			select {
			case w.wrote <- struct{}{}:
			default:
			}
		}
	}
}

// awaitSuccess waits for a hub write that returns nil after now.
func (w *hubWriter) awaitSuccess(t *testing.T, what string) {
	t.Helper()
	select { // drop a success from before
	case <-w.wrote:
	default:
	}
	natstest.Await(t, w.wrote, waitTimeout, what, nil)
}

func (w *hubWriter) count(target error) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, err := range w.failed {
		if errors.Is(err, target) {
			n++
		}
	}
	return n
}
