package outbox_test

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/c360/natsclient/testing/natstest"
)

// Two streams answer on their own schedules, so the answers to one window
// arrive out of send order: the forwarder keeps an early answer until the
// messages before it have theirs. Every message still reaches its stream
// once, in order, and Flush returns.
func TestAnswersFromTwoStreamsOutOfOrder(t *testing.T) {
	tc := newEnv(t)
	// A second stream, compressed, so that it stores at another pace (a
	// memory stream would not survive the server's restart).
	createStream(t, tc.Client, jetstream.StreamConfig{Name: "ZIP", Subjects: []string{"zip.>"}, Compression: jetstream.S2Compression})
	ob := openOutbox(t, tc.Client, outboxPath(t))
	tc.Server.Stop()

	const n = 3000
	ctx := natstest.Context(t, testTimeout)
	var toPlain, toZip []sent
	for i := range n {
		subject, list := subjectPfx+"a", &toPlain
		if i%2 == 1 {
			subject, list = "zip.a", &toZip
		}
		data := strconv.Itoa(i)
		id, err := ob.Publish(ctx, subject, []byte(data))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		*list = append(*list, sent{id: id, data: data})
	}
	tc.Server.Start()
	flush(t, ob)
	checkStream(t, tc.URL, streamName, toPlain)
	checkStream(t, tc.URL, "ZIP", toZip)
	if st := ob.Stats(); st.Forwarded != n || st.Pending != 0 {
		t.Errorf("stats %+v, want %d forwarded and nothing pending", st, n)
	}
}
