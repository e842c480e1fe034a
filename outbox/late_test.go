package outbox_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/c360/natsclient/testing/natstest"
)

// Where exactly once ends: a message whose acknowledgement was lost, sent
// again after its stream's duplicate window has passed, is stored twice, and
// Stats.ResentLate counts the resend.
func TestResendAfterTheDuplicateWindowIsCounted(t *testing.T) {
	const dupWindow = 100 * time.Millisecond // the server's least
	tc := natstestJetStream(t)
	createStream(t, tc.Client, jetstream.StreamConfig{Name: streamName, Subjects: []string{subjectPfx + ">"}, Duplicates: dupWindow})
	seen := subscribeDirect(t, tc.Server.DirectURL(), 16)
	path := outboxPath(t)

	// The server stores the messages; their acknowledgements never arrive.
	ob := openOutbox(t, tc.Client, path)
	warmUp(t, tc.Client, ob)
	tc.Server.FreezeReplies()
	want := publishN(t, ob, subjectPfx+"a", "late", 5)
	for range want {
		natstest.Await(t, seen, waitTimeout, "a message reaching the server", nil)
	}
	closeOutbox(t, ob)
	tc.Server.Thaw()
	// The condition under test is time itself: the window must pass before
	// the next Open sends the messages again. The server forgets ids on a
	// timer that fires after the window; ten windows leave it room.
	time.Sleep(10 * dupWindow)

	ob = openOutbox(t, tc.Client, path)
	flush(t, ob)
	if st := ob.Stats(); st.Resent != 5 || st.ResentLate != 5 {
		t.Errorf("stats %+v, want 5 resends, all 5 late", st)
	}
	checkStream(t, tc.URL, streamName, append(want, want...))
}
