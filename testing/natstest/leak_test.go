package natstest_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// The nats-server goroutines IgnoreGoroutines is for: a mirror's and a
// source's wait for their origin's answer.
const (
	mirrorSetup = "github.com/nats-io/nats-server/v2/server.(*stream).setupMirrorConsumer.func3"
	sourceSetup = "github.com/nats-io/nats-server/v2/server.(*stream).trySetupSourceConsumer.func3"
)

// TestIgnoreGoroutinesCoversALeafCutOffFromItsHub makes the case
// IgnoreGoroutines exists for: a leaf with a mirrored bucket and a sourced
// stream loses its hub link and restarts during the outage (a site
// rebooting without its uplink), so both ask the hub for a consumer and get
// no answer; then the servers shut down. Without the options goleak finds
// the goroutines nats-server left waiting, which would fail a user's
// VerifyTestMain; with them it finds nothing. A nats-server whose goroutines
// are named otherwise, or that no longer leaves them, fails this test.
func TestIgnoreGoroutinesCoversALeafCutOffFromItsHub(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Run("site", func(t *testing.T) {
		// Embedded whatever NATSTEST_BACKEND says: only an in-process
		// server leaves goroutines in the test binary.
		hub := natstest.NewServer(t, natstest.WithBackend(natstest.Embedded),
			natstest.WithJetStreamDomain("hub"), natstest.WithLeafNodes())
		leaf := natstest.NewLeaf(t, hub, natstest.WithBackend(natstest.Embedded), natstest.WithJetStreamDomain("edge"))
		leaf.WaitForHubLink(true)
		ctx := context.Background()
		hubJS, err := jetstream.New(dial(t, hub.URL()).Conn)
		if err != nil {
			t.Fatal(err)
		}
		origin, err := hubJS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cfg"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := origin.Put(ctx, "greeting", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		local, err := jetstream.New(dial(t, leaf.URL()).Conn)
		if err != nil {
			t.Fatal(err)
		}
		mirror, err := local.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cfg",
			Mirror: &jetstream.StreamSource{Name: "cfg", Domain: "hub"}})
		if err != nil {
			t.Fatal(err)
		}
		sourced, err := local.CreateStream(ctx, jetstream.StreamConfig{Name: "AGG",
			Sources: []*jetstream.StreamSource{{Name: "KV_cfg", Domain: "hub"}}})
		if err != nil {
			t.Fatal(err)
		}
		within(t, "the mirror and the source to copy the hub's value", func() bool {
			e, err := mirror.Get(ctx, "greeting")
			info, ierr := sourced.Info(ctx)
			return err == nil && string(e.Value()) == "hello" && ierr == nil && info.State.Msgs == 1
		})

		leaf.HubLink().Cut()
		leaf.Restart()
		within(t, "the mirror and the source to wait for the hub's answer", func() bool {
			stacks := goroutineStacks()
			return strings.Contains(stacks, mirrorSetup+"()\n") && strings.Contains(stacks, sourceSetup+"()\n")
		})
	}) // the servers have shut down: the subtest's cleanups ran

	err := goleak.Find(before)
	if err == nil || !strings.Contains(err.Error(), mirrorSetup) || !strings.Contains(err.Error(), sourceSetup) {
		t.Fatalf("without IgnoreGoroutines, goleak found %v; want the mirror's and the source's goroutines", err)
	}
	if err := goleak.Find(append(natstest.IgnoreGoroutines(), before)...); err != nil {
		t.Fatalf("with IgnoreGoroutines: %v", err)
	}
}

// within polls cond, for states no event announces, failing the test after
// wait.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutineStacks returns the stacks of every goroutine.
func goroutineStacks() string {
	for size := 1 << 20; ; size *= 2 {
		buf := make([]byte, size)
		if n := runtime.Stack(buf, true); n < size {
			return string(buf[:n])
		}
	}
}
