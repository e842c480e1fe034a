package natsclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// A replicated stream without a leader answers nobody, as a subject that no
// stream captures does; PublishToStream must tell the two apart and wait for
// the former.
func TestPublishToStreamWaitsForALeaderlessStream(t *testing.T) {
	c := natstest.NewCluster(t, 3)
	// The log line of a publish sent again. Nobody answers it (no
	// responders) when the client's server survived; when the client was on
	// a stopped member, the attempt times out while it reconnects.
	log := matchLogger{want: "sending again", lines: make(chan string, 16)}
	client := newClient(t, c.URLs(), fast(natsclient.WithTimeout(2*time.Second), natsclient.WithLogger(log))...)
	ctx := natstest.Context(t, waitTimeout)
	if err := client.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Place(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), natstest.PlaceAttempt)
		defer cancel()
		_, err := client.CreateStream(ctx, jetstream.StreamConfig{Name: "ELECT", Subjects: []string{"elect.>"}, Replicas: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Two of three down: no quorum, so no leader until one returns.
	leader := c.WaitForStreamLeader("$G", "ELECT")
	other := (leader + 1) % 3
	c.Server(leader).Stop()
	c.Server(other).Stop()

	result := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := client.PublishToStream(ctx, "elect.x", []byte("waited"))
		result <- err
	}()
	select {
	case line := <-log.lines:
		t.Logf("client: %s", line)
	case err := <-result:
		t.Fatalf("publish to a stream without a leader gave up at once: %v", err)
	case <-time.After(waitTimeout):
		t.Fatalf("no publish was sent again within %v", waitTimeout)
	}
	c.Server(other).Start()
	if err := natstest.Receive(t, result, waitTimeout, "PublishToStream's result"); err != nil {
		t.Fatalf("publish to a stream without a leader: %v", err)
	}
	if m := c.LastMsg("ELECT", "elect.x"); string(m.Data) != "waited" {
		t.Fatalf("last message %q", m.Data)
	}
}
