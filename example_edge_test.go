package natsclient_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// edgeExampleServer starts an in-process nats-server with JetStream in domain,
// changed by more, and returns it with a function that stops it.
func edgeExampleServer(domain string, more func(*server.Options)) (*server.Server, func()) {
	opts := &server.Options{ServerName: domain, JetStream: true, JetStreamDomain: domain}
	more(opts)
	return runExampleServer(opts)
}

// An edge site: a leaf node in JetStream domain "edge" connected to a hub in
// domain "hub". The site's service keeps its own streams in its domain,
// reads the hub's configuration bucket from a mirror on the leaf, and
// updates it through the same mirror: the store writes to the hub's bucket,
// where the update is decided.
func ExampleClient_Domain() {
	hub, stopHub := edgeExampleServer("hub", func(o *server.Options) {
		o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", server.RANDOM_PORT
	})
	defer stopHub()
	leafURL := &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(leafPortOf(hub)))}
	leaf, stopLeaf := edgeExampleServer("edge", func(o *server.Options) {
		o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{leafURL}}}
	})
	defer stopLeaf()
	retryFor(10*time.Second, "the leaf's link to the hub", func() bool { return leaf.NumLeafNodes() > 0 })

	ctx := context.Background()
	client, err := natsclient.NewClient(leaf.ClientURL(), natsclient.WithJetStreamDomain("edge"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	// The hub's JetStream, on the same client. (Operators create the hub's
	// bucket; the first request may race the leaf link's interest.)
	hubJS, err := client.Domain("hub")
	if err != nil {
		log.Fatal(err)
	}
	var central jetstream.KeyValue
	retryFor(10*time.Second, "the hub's bucket", func() bool {
		central, err = hubJS.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{Bucket: "cfg", History: 5})
		return err == nil
	})

	// The site's mirror of it, in the site's own domain.
	mirror, err := client.CreateKeyValueBucket(ctx, jetstream.KeyValueConfig{
		Bucket: "cfg",
		Mirror: &jetstream.StreamSource{Name: "cfg", Domain: "hub"},
	})
	if err != nil {
		log.Fatal(err)
	}
	store := client.NewKVStore(mirror)
	err = store.UpdateJSON(ctx, "limits", func(m map[string]any) error {
		m["max_rate"] = 100
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	entry, err := central.Get(ctx, "limits")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("hub: %s\n", entry.Value())
	// Output:
	// hub: {"max_rate":100}
}

// leafPortOf is the port srv accepts leaf nodes on, as its monitoring
// report gives it.
func leafPortOf(srv *server.Server) int {
	v, err := srv.Varz(nil)
	if err != nil {
		log.Fatal(err)
	}
	return v.LeafNode.Port
}

// retryFor calls try until it reports success, and ends the example if it
// has not within d: what the tests wait for with natstest's
// Server.WaitForHubLink and Eventually, which need a *testing.T.
func retryFor(d time.Duration, what string, try func() bool) {
	deadline := time.Now().Add(d)
	for !try() {
		if time.Now().After(deadline) {
			log.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
