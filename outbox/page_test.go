package outbox_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/c360/natsclient/testing/natstest"
)

// The forwarder reads the queue a page at a time, and the messages of a page
// share their memory (payloads copied into common buffers, a repeated
// subject kept once) while messages stored without headers share one header
// for their ids. None of that may show in what the stream stores: payloads
// of every size, empty to larger than a shared buffer takes, across buffer
// boundaries; subjects alternating and repeated; headers on some messages
// and not on their neighbours.
func TestForwardedPagesKeepEveryMessageIntact(t *testing.T) {
	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, outboxPath(t))
	tc.Server.Stop()

	type want struct {
		subject, id string
		data        []byte
		trace       string
	}
	var wants []want
	sizes := []int{0, 1, 128, 4 << 10, 9 << 10, 40 << 10, 300}
	ctx := natstest.Context(t, testTimeout)
	for i := range 600 {
		size := sizes[i%len(sizes)]
		data := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		if size > 0 {
			copy(data, fmt.Sprintf("%d:", i))
		}
		subject := subjectPfx + []string{"x", "x", "y", "z.long.subject.name"}[i%4]
		msg := nats.NewMsg(subject)
		msg.Data = data
		trace := ""
		if i%3 == 0 {
			trace = fmt.Sprintf("trace-%d", i)
			msg.Header.Set("Trace", trace)
		}
		id, err := ob.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		wants = append(wants, want{subject: subject, id: id, data: data, trace: trace})
	}
	tc.Server.Start()
	flush(t, ob)

	got := streamMsgs(t, tc.URL, streamName)
	if len(got) != len(wants) {
		t.Fatalf("stream holds %d messages, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		g := got[i]
		switch {
		case g.Subject != w.subject:
			t.Fatalf("message %d: subject %q, want %q", i, g.Subject, w.subject)
		case !bytes.Equal(g.Data, w.data):
			t.Fatalf("message %d: %d bytes starting %q, want %d starting %q", i, len(g.Data), prefix(g.Data), len(w.data), prefix(w.data))
		case g.Header.Get(jetstream.MsgIDHeader) != w.id:
			t.Fatalf("message %d: id %q, want %q", i, g.Header.Get(jetstream.MsgIDHeader), w.id)
		case g.Header.Get("Trace") != w.trace:
			t.Fatalf("message %d: Trace header %q, want %q", i, g.Header.Get("Trace"), w.trace)
		case len(g.Header.Values(jetstream.MsgIDHeader)) != 1:
			t.Fatalf("message %d: ids %v, want one", i, g.Header.Values(jetstream.MsgIDHeader))
		}
	}
}

func prefix(b []byte) string { return strings.ToValidUTF8(string(b[:min(len(b), 8)]), "?") }
