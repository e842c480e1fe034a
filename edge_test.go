package natsclient_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// edgeSite is a hub in domain "hub" holding bucket cfg, a leaf in domain
// "edge" mirroring it, and a client of the leaf in its own domain.
type edgeSite struct {
	hub, leaf *natstest.Server
	client    *natsclient.Client
	hubJS     *natsclient.Domain
	mirror    jetstream.KeyValue // the leaf's mirror of cfg
}

func newEdgeSite(t *testing.T, opts ...natsclient.Option) *edgeSite {
	t.Helper()
	hub := natstest.NewServer(t, natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
	leaf := natstest.NewLeaf(t, hub, natstest.WithJetStreamDomain("edge"))
	leaf.WaitForHubLink(true)
	client := edgeClient(t, leaf, opts...)
	hubJS, err := client.Domain("hub")
	if err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Context(t, waitTimeout)
	var origin jetstream.KeyValue
	eventuallyOK(t, "create bucket cfg in the hub's domain", func() error {
		origin, err = hubJS.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "cfg", History: 10})
		return err
	})
	if _, err := origin.Put(ctx, "greeting", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	mirror, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket: "cfg",
		Mirror: &jetstream.StreamSource{Name: "cfg", Domain: "hub"},
	})
	if err != nil {
		t.Fatalf("mirror of cfg on the leaf: %v", err)
	}
	return &edgeSite{hub: hub, leaf: leaf, client: client, hubJS: hubJS, mirror: mirror}
}

// edgeClient connects a client to leaf in domain "edge"; opts come after
// the defaults and may override them.
func edgeClient(t *testing.T, leaf *natstest.Server, opts ...natsclient.Option) *natsclient.Client {
	t.Helper()
	client, err := natsclient.NewClient(leaf.URL(), append([]natsclient.Option{
		natsclient.WithJetStreamDomain("edge"),
		natsclient.WithReconnectWait(50 * time.Millisecond),
		natsclient.WithMaxBackoff(time.Second),
		natsclient.WithMaxReconnects(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Close(ctx)
	})
	if err := client.Connect(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	return client
}

// eventuallyOK calls fn until it succeeds: interest and JetStream domains
// take a moment to cross a leaf node's new link.
func eventuallyOK(t *testing.T, what string, fn func() error) {
	t.Helper()
	var err error
	natstest.Eventually(t, waitTimeout, what, func() bool { err = fn(); return err == nil })
}

func TestKVStoreWritesThroughALeafMirrorExactlyOnce(t *testing.T) {
	site := newEdgeSite(t)
	// 400 round trips across the link, each a read and a write at the hub:
	// on a loaded machine that outlasts testContext.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	store := site.client.NewKVStore(site.mirror) // default KVOptions
	if err := store.Err(); err != nil {
		t.Fatal(err)
	}

	// Four writers contend for one key across the leaf link, and default
	// KVOptions allow an update 4 attempts: one that loses them all returns
	// ErrKVMaxRetriesExceeded having written nothing, and its writer calls
	// again, as a user would. Any other error fails the test.
	const writers, n = 4, 100
	var (
		wg        sync.WaitGroup
		exhausted atomic.Int64
	)
	errs := make(chan error, writers*n)
	for range writers {
		wg.Go(func() {
			for range n {
				for {
					err := store.UpdateJSON(ctx, "counter", func(m map[string]any) error {
						c, _ := m["n"].(float64)
						m["n"] = c + 1
						return nil
					})
					if !errors.Is(err, natsclient.ErrKVMaxRetriesExceeded) {
						errs <- err
						break
					}
					exhausted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateJSON through the mirror: %v", err)
		}
	}
	t.Logf("%d updates ran out of retries and were called again", exhausted.Load())

	hubBucket, err := site.hubJS.KeyValueBucket(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	hubStore := site.hubJS.NewKVStore(hubBucket)
	var got struct{ N int }
	if _, err := hubStore.GetJSON(ctx, "counter", &got); err != nil {
		t.Fatalf("the hub's counter: %v", err)
	}
	if got.N != writers*n {
		t.Fatalf("hub's counter = %d after %d increments, want exactly %d", got.N, writers*n, writers*n)
	}
	// The mirror converges to it.
	natstest.Eventually(t, waitTimeout, "the mirror's counter reaches the hub's", func() bool {
		var m struct{ N int }
		_, err := store.GetJSON(ctx, "counter", &m)
		return err == nil && m.N == writers*n
	})
}

func TestKVStoreWhileTheHubIsUnreachable(t *testing.T) {
	site := newEdgeSite(t)
	ctx := natstest.Context(t, waitTimeout)
	client := site.client
	store := client.NewKVStore(site.mirror)
	natstest.Eventually(t, waitTimeout, "the mirror has the hub's greeting", func() bool {
		e, err := store.Get(ctx, "greeting")
		return err == nil && string(e.Value()) == "hello"
	})
	if _, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "LOCAL", Subjects: []string{"local.>"}}); err != nil {
		t.Fatal(err)
	}

	hubBucket, err := site.hubJS.KeyValueBucket(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	hubStore := site.hubJS.NewKVStore(hubBucket)
	if _, err := hubStore.Get(ctx, "greeting"); err != nil {
		t.Fatal(err)
	}

	site.leaf.HubLink().Cut()
	site.leaf.WaitForHubLink(false)

	start := time.Now()
	if _, err := hubStore.Get(ctx, "greeting"); !errors.Is(err, natsclient.ErrUnreachable) || !strings.Contains(err.Error(), `domain "hub"`) {
		t.Fatalf("Get from the hub's domain with the hub cut off: %v; want ErrUnreachable naming domain hub", err)
	}
	if _, err := hubStore.Put(ctx, "greeting", []byte("x")); !errors.Is(err, natsclient.ErrUnreachable) || errors.Is(err, natsclient.ErrKVUnknownOutcome) {
		t.Fatalf("Put to the hub's domain with the hub cut off: %v; want ErrUnreachable", err)
	}
	if _, err := site.hubJS.Stream(ctx, "KV_cfg"); !errors.Is(err, natsclient.ErrUnreachable) {
		t.Fatalf("Stream in the hub's domain with the hub cut off: %v; want ErrUnreachable", err)
	}
	if _, err := site.hubJS.PublishToStream(ctx, "$KV.cfg.greeting", []byte("x")); !errors.Is(err, natsclient.ErrUnreachable) {
		t.Fatalf("PublishToStream to the hub's domain with the hub cut off: %v; want ErrUnreachable", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("four calls to the cut-off hub took %v; want about a second each at most", took)
	}

	for i := range 3 {
		start := time.Now()
		_, err := store.Put(ctx, "greeting", []byte("bye"))
		took := time.Since(start)
		if !errors.Is(err, natsclient.ErrUnreachable) || errors.Is(err, natsclient.ErrKVUnknownOutcome) {
			t.Fatalf("Put %d with the hub cut off: %v; want ErrUnreachable, not an unknown outcome", i, err)
		}
		if took > 2*time.Second {
			t.Fatalf("Put %d took %v to fail; want about a second at most", i, took)
		}
		t.Logf("Put %d through the mirror refused in %v", i, took)
		err = store.UpdateJSON(ctx, "counter", func(map[string]any) error { return nil })
		if !errors.Is(err, natsclient.ErrUnreachable) {
			t.Fatalf("UpdateJSON %d with the hub cut off: %v; want ErrUnreachable", i, err)
		}
	}
	e, err := store.Get(ctx, "greeting")
	if err != nil || string(e.Value()) != "hello" {
		t.Fatalf("Get on the mirror with the hub cut off = %v, %v; want the last mirrored value", e, err)
	}
	if err := client.Publish(ctx, "local.core", []byte("x")); err != nil {
		t.Fatalf("local publish: %v", err)
	}
	if _, err := client.PublishToStream(ctx, "local.event", []byte("x")); err != nil {
		t.Fatalf("local stream publish: %v", err)
	}
	if st := client.Stats(); st.Breaker != natsclient.BreakerClosed || st.BreakerTrips != 0 {
		t.Fatalf("breaker %v after %d trips with the hub cut off; want closed, never tripped", st.Breaker, st.BreakerTrips)
	}

	site.leaf.HubLink().Restore()
	site.leaf.WaitForHubLink(true)
	eventuallyOK(t, "Put through the mirror after the link returned", func() error {
		_, err := store.Put(ctx, "greeting", []byte("back"))
		return err
	})
	natstest.Eventually(t, waitTimeout, "the mirror has the new greeting", func() bool {
		e, err := store.Get(ctx, "greeting")
		return err == nil && string(e.Value()) == "back"
	})
}

func TestDomainNamesAreValidated(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>"} {
		if _, err := natsclient.NewClient("nats://127.0.0.1:4222", natsclient.WithJetStreamDomain(bad)); !errors.Is(err, natsclient.ErrInvalidOption) {
			t.Errorf("WithJetStreamDomain(%q): %v, want ErrInvalidOption", bad, err)
		}
	}
	c, err := natsclient.NewClient("nats://127.0.0.1:4222")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Domain("a.b"); !errors.Is(err, natsclient.ErrInvalidOption) {
		t.Errorf("Domain(%q): %v, want ErrInvalidOption", "a.b", err)
	}
}

func TestNewKVStoreWithAnotherDomainsHandle(t *testing.T) {
	site := newEdgeSite(t)
	ctx := natstest.Context(t, waitTimeout)
	if _, err := site.hubJS.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "central"}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(site.leaf.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := raw.KeyValue(ctx, "central")
	if err != nil {
		t.Fatal(err)
	}

	// The client's own domain has no bucket "central": refused at once, saying where it looked.
	start := time.Now()
	_, err = site.client.NewKVStore(foreign).Put(ctx, "k", []byte("v"))
	if !errors.Is(err, jetstream.ErrBucketNotFound) || !strings.Contains(err.Error(), `domain "edge"`) {
		t.Fatalf("Put through a hub handle on an edge client: %v; want ErrBucketNotFound naming domain edge", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("refusal took %v", took)
	}
	if _, err := foreign.Put(ctx, "raw", []byte("v")); err != nil {
		t.Fatalf("nats.go's own Put: %v", err)
	}
	// Through the hub's domain it works.
	if _, err := site.hubJS.NewKVStore(foreign).Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put through Domain(hub): %v", err)
	}
	if e, err := foreign.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("hub's bucket has %v, %v", e, err)
	}
}

// A value too large for the origin bucket is refused by the origin, where
// the write goes: the error quotes the origin's MaxValueSize, not the
// mirror's, and nothing is stored on either side.
func TestKVStoreThroughAMirrorQuotesTheOriginsValueLimit(t *testing.T) {
	site := newEdgeSite(t)
	ctx := natstest.Context(t, waitTimeout)
	origin, err := site.hubJS.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "small", MaxValueSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := site.client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket:       "small",
		MaxValueSize: 8192,
		Mirror:       &jetstream.StreamSource{Name: "small", Domain: "hub"},
	})
	if err != nil {
		t.Fatal(err)
	}
	store := site.client.NewKVStore(mirror)
	value := []byte(strings.Repeat("v", 2000)) // within the mirror's limit, over the origin's
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := store.Put(ctx, "k", value); return err }},
		{"Create", func() error { _, err := store.Create(ctx, "k", value); return err }},
	} {
		err := op.call()
		if !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) || !errors.Is(err, natsclient.ErrInvalidArgument) ||
			!strings.Contains(err.Error(), "MaxValueSize of 1024 bytes") || strings.Contains(err.Error(), "8192") {
			t.Fatalf("%s of %d bytes through the mirror: %v; want a refusal quoting the origin's MaxValueSize of 1024 bytes",
				op.name, len(value), err)
		}
		t.Logf("%s: %v", op.name, err)
	}
	if _, err := origin.Get(ctx, "k"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the origin holds k after the refused writes: %v", err)
	}
	if _, err := mirror.Get(ctx, "k"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the mirror holds k after the refused writes: %v", err)
	}
}
