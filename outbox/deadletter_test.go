package outbox_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// Messages the server refuses for good go to the dead letters after their
// first refusal, and the messages behind them are forwarded all the same.
func TestDeadLetters(t *testing.T) {
	tc := natstestJetStream(t)
	createStream(t, tc.Client, jetstream.StreamConfig{Name: streamName, Subjects: []string{subjectPfx + ">"}, MaxMsgSize: 1024})
	createStream(t, tc.Client, jetstream.StreamConfig{Name: "FULL", Subjects: []string{"full.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew})
	ob := openOutbox(t, tc.Client, outboxPath(t))
	ctx := natstest.Context(t, testTimeout)
	pub := func(subject, data string) string {
		t.Helper()
		id, err := ob.Publish(ctx, subject, []byte(data))
		if err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
		return id
	}
	good0 := pub(subjectPfx+"a", "good-0")
	big := pub(subjectPfx+"a", strings.Repeat("b", 2000))
	orphan := pub("nostream.x", "orphan")
	full1 := pub("full.x", "f1")
	full2 := pub("full.x", "f2")
	good1 := pub(subjectPfx+"a", "good-1")
	flush(t, ob)

	checkStream(t, tc.URL, streamName, []sent{{good0, "good-0"}, {good1, "good-1"}})
	checkStream(t, tc.URL, "FULL", []sent{{full1, "f1"}})
	if st := ob.Stats(); st.DeadLettered != 3 || st.Forwarded != 3 || st.Pending != 0 {
		t.Errorf("stats %+v, want 3 forwarded, 3 dead-lettered, none pending", st)
	}
	dead, err := ob.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, d := range dead {
		byID[d.ID] = d.Err
		if d.At.IsZero() || d.Subject == "" || d.Err == "" {
			t.Errorf("dead letter %+v lacks a field", d)
		}
	}
	for id, want := range map[string]string{big: "exceeds maximum", orphan: "no stream captures", full2: "maximum messages"} {
		if got, ok := byID[id]; !ok || !strings.Contains(got, want) {
			t.Errorf("dead letter %s: %q (present %v), want an error saying %q", id, got, ok, want)
		}
	}
	if len(dead) != 3 {
		t.Errorf("%d dead letters, want 3: %+v", len(dead), dead)
	}

	// A stream for the orphan's subject, then Requeue: it arrives, with its id.
	createStream(t, tc.Client, jetstream.StreamConfig{Name: "ORPHANS", Subjects: []string{"nostream.>"}})
	if err := ob.Requeue(ctx, orphan); err != nil {
		t.Fatalf("requeue: %v", err)
	}
	flush(t, ob)
	checkStream(t, tc.URL, "ORPHANS", []sent{{orphan, "orphan"}})

	if err := ob.Discard(ctx, big); err != nil {
		t.Fatalf("discard: %v", err)
	}
	dead, err = ob.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != full2 || string(dead[0].Data) != "f2" {
		t.Errorf("dead letters after requeue and discard: %+v, want only %s", dead, full2)
	}
	for name, call := range map[string]func() error{
		"Requeue": func() error { return ob.Requeue(ctx, big) },
		"Discard": func() error { return ob.Discard(ctx, "no-such-id") },
	} {
		if err := call(); !errors.Is(err, natsclient.ErrInvalidArgument) {
			t.Errorf("%s of an unknown id: %v, want ErrInvalidArgument", name, err)
		}
	}
}
