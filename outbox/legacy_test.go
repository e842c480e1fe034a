package outbox_test

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/c360/natsclient/testing/natstest"
)

// legacyMsg is one pending message of testdata/legacy-v1.db, a file written
// by the outbox before records carried a checksum (format 1), as
// testdata/legacy-v1.json lists them.
type legacyMsg struct {
	ID, Subject, Data string
	Header            map[string][]string
}

// A box upgraded with messages pending loses none: a file of format 1 opens,
// forwards every message it holds, in order, with its id and headers, keeps
// its dead letter readable, and takes new messages after them.
func TestFileOfTheFormatWithoutChecksumsForwardsEverything(t *testing.T) {
	var want []legacyMsg
	j, err := os.ReadFile("testdata/legacy-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &want); err != nil {
		t.Fatal(err)
	}
	path := outboxPath(t)
	copyFile(t, "testdata/legacy-v1.db", path)

	tc := newEnv(t)
	ob := openOutbox(t, tc.Client, path)
	after := publishN(t, ob, subjectPfx+"after", "new", 3)
	flush(t, ob)

	got := streamMsgs(t, tc.URL, streamName)
	if len(got) != len(want)+len(after) {
		t.Fatalf("the stream holds %d messages, want the file's %d and 3 new ones", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		h := map[string][]string(g.Header)
		id := g.Header.Get(jetstream.MsgIDHeader)
		delete(h, jetstream.MsgIDHeader)
		if len(h) == 0 {
			h = nil
		}
		if g.Subject != w.Subject || string(g.Data) != w.Data || id != w.ID || !reflect.DeepEqual(h, w.Header) {
			t.Fatalf("message %d is %s %q (id %s, header %v), want %s %q (id %s, header %v)",
				i+1, g.Subject, g.Data, id, h, w.Subject, w.Data, w.ID, w.Header)
		}
	}
	for i, a := range after {
		if g := got[len(want)+i]; string(g.Data) != a.data || g.Header.Get(jetstream.MsgIDHeader) != a.id {
			t.Errorf("new message %d is %q, want %q", i, g.Data, a.data)
		}
	}
	dead, err := ob.DeadLetters(natstest.Context(t, testTimeout))
	if err != nil || len(dead) != 1 || dead[0].Subject != "nostream.x" || string(dead[0].Data) != "refused" {
		t.Fatalf("dead letters %+v (%v), want the file's one refused message, readable", dead, err)
	}
	if err := ob.Requeue(natstest.Context(t, testTimeout), dead[0].ID); err != nil {
		t.Errorf("requeue the file's dead letter: %v", err)
	}
	closeOutbox(t, ob)
	// The upgraded file opens again (format 2 now).
	closeOutbox(t, openOutbox(t, tc.Client, path))
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
