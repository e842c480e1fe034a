package natstest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

func TestClusterElectsLeadersAndKeepsClientsOnTheProxies(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	proxies := map[string]bool{}
	for i := range c.Size() {
		proxies[strings.TrimPrefix(c.Server(i).URL(), "nats://")] = true
	}
	if got := strings.Split(c.URLs(), ","); len(got) != 3 {
		t.Fatalf("URLs() = %q, want 3 URLs", c.URLs())
	}
	if l := c.MetaLeader(); l < 0 || l > 2 {
		t.Fatalf("MetaLeader() = %d right after NewCluster, want a member", l)
	}

	// A client given one member learns of the others from INFO; every
	// address it learns must be a proxy, or a reconnect would dodge faults.
	nc := dial(t, c.Server(0).URL())
	natstest.Eventually(t, wait, "discovery of the other members", func() bool { return len(nc.DiscoveredServers()) == 2 })
	for _, u := range nc.DiscoveredServers() {
		if !proxies[strings.TrimPrefix(u, "nats://")] {
			t.Errorf("client discovered %s, which is not one of the proxies %v", u, proxies)
		}
	}

	// Placing an R3 stream takes three servers agreeing; on a loaded machine
	// that has taken more than nats.go's default wait of 5s.
	js, err := nc.JetStream(nats.MaxWait(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Place(func() error {
		_, err := js.AddStream(&nats.StreamConfig{Name: "S", Subjects: []string{"s"}, Replicas: 3})
		return err
	}); err != nil {
		t.Fatalf("add R3 stream: %v", err)
	}
	leader := c.WaitForStreamLeader("$G", "S")
	c.Server(leader).Stop()
	if next := c.WaitForStreamLeader("$G", "S"); next == leader {
		t.Fatalf("stream leader is still the stopped member %d", leader)
	}
	c.Server(leader).Start()

	meta := c.MetaLeader()
	c.Server(meta).Stop()
	if next := c.WaitForMetaLeader(); next == meta {
		t.Fatalf("meta leader is still the stopped member %d", meta)
	}
}
