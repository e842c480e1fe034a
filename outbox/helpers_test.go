package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// waitTimeout bounds every wait for an event or for Flush. Waits end as soon
// as what they wait for happens; the bound says how long a broken promise may
// take to show on a loaded machine.
const waitTimeout = 90 * time.Second

const (
	streamName = "OUT"
	subjectPfx = "out."
)

// testTimeout bounds the calls of one test, through natstest.Context.
const testTimeout = 3 * time.Minute

// newEnv starts a JetStream server with a connected client and the stream
// OUT capturing out.>.
func newEnv(t testing.TB, opts ...natstest.Option) *natstest.TestClient {
	t.Helper()
	tc := natstest.NewTestClient(t, append([]natstest.Option{natstest.WithJetStream()}, opts...)...)
	createStream(t, tc.Client, jetstream.StreamConfig{Name: streamName, Subjects: []string{subjectPfx + ">"}})
	return tc
}

func createStream(t testing.TB, c *natsclient.Client, cfg jetstream.StreamConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("create stream %s: %v", cfg.Name, err)
	}
}

// openOutbox opens an outbox at path, logging to the test's log, and closes
// it when the test ends.
func openOutbox(t testing.TB, c *natsclient.Client, path string, opts ...outbox.Option) *outbox.Outbox {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testLog{t}, nil))
	ob, err := outbox.Open(c, path, append([]outbox.Option{outbox.WithLogger(logger)}, opts...)...)
	if err != nil {
		t.Fatalf("open outbox: %v", err)
	}
	t.Cleanup(func() { closeOutbox(t, ob) })
	return ob
}

// testLog writes log lines to the test's log, shown when it fails or with -v.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func closeOutbox(t testing.TB, ob *outbox.Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ob.Close(ctx); err != nil {
		t.Errorf("close outbox: %v", err)
	}
}

func outboxPath(t testing.TB) string { return filepath.Join(t.TempDir(), "outbox.db") }

// flush waits for the outbox to drain, failing the test after waitTimeout.
func flush(t testing.TB, ob *outbox.Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ob.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, ob.Stats())
	}
}

// sent is one message whose Publish returned nil.
type sent struct {
	id, data string
}

// publishN publishes n messages "prefix-i" to subject, in order, and
// returns them.
func publishN(t testing.TB, ob *outbox.Outbox, subject, prefix string, n int) []sent {
	t.Helper()
	ctx := natstest.Context(t, testTimeout)
	out := make([]sent, 0, n)
	for i := range n {
		data := prefix + "-" + strconv.Itoa(i)
		id, err := ob.Publish(ctx, subject, []byte(data))
		if err != nil {
			t.Fatalf("publish %s: %v", data, err)
		}
		out = append(out, sent{id: id, data: data})
	}
	return out
}

// streamMsgs reads every message of the stream, in stream order, on a
// connection of its own straight to the server.
func streamMsgs(t testing.TB, url, stream string) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return natstest.StreamMsgs(t, ctx, natstest.JetStream(t, url), stream)
}

// checkStream asserts that the stream holds exactly want, in order, each
// message with its Publish id as Nats-Msg-Id.
func checkStream(t testing.TB, url, stream string, want []sent) {
	t.Helper()
	got := streamMsgs(t, url, stream)
	if len(got) != len(want) {
		t.Errorf("stream %s holds %d messages, want %d", stream, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g := got[i]
		if string(g.Data) != want[i].data || g.Header.Get(jetstream.MsgIDHeader) != want[i].id {
			t.Fatalf("stream %s message %d is %q (id %s), want %q (id %s)%s", stream, i+1,
				g.Data, g.Header.Get(jetstream.MsgIDHeader), want[i].data, want[i].id, around(got, i))
		}
	}
}

func around(got []*nats.Msg, i int) string {
	var b strings.Builder
	b.WriteString("; the stream around it:")
	for j := max(0, i-3); j < min(len(got), i+4); j++ {
		fmt.Fprintf(&b, " %q", got[j].Data)
	}
	return b.String()
}

// natstestJetStream starts a JetStream server and a connected client, with no
// stream.
func natstestJetStream(t testing.TB) *natstest.TestClient {
	t.Helper()
	return natstest.NewTestClient(t, natstest.WithJetStream())
}

// warmUp forwards one message to a stream of its own and waits for its
// acknowledgement: the forwarder's connection is then up. A test that
// freezes the server's replies does it after, since a connection cannot be
// dialled while they are held.
func warmUp(t testing.TB, c *natsclient.Client, ob *outbox.Outbox) {
	t.Helper()
	createStream(t, c, jetstream.StreamConfig{Name: "WARM", Subjects: []string{"warm.>"}})
	if _, err := ob.Publish(natstest.Context(t, testTimeout), "warm.up", []byte("warm")); err != nil {
		t.Fatalf("publish the warm-up message: %v", err)
	}
	flush(t, ob)
}
