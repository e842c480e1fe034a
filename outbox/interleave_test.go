package outbox_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func pubData(g, i int) string { return fmt.Sprintf("%d:%d", g, i) }

// checkInterleaved asserts that the stream holds every message of want
// exactly once, each publisher's in the order its Publish calls returned,
// each with its id. Publishers interleave freely.
func checkInterleaved(t testing.TB, url, stream string, want [][]sent) {
	t.Helper()
	checkPrefixes(t, url, stream, want, nil)
}

// checkPrefixes is checkInterleaved for publishers that may have stored one
// message more than they reported (a child killed between Publish returning
// and its report): publisher g's messages must be exactly want[g], or
// want[g] and the one after it when extra[g] is set.
func checkPrefixes(t testing.TB, url, stream string, want [][]sent, extra []bool) {
	t.Helper()
	got := streamMsgs(t, url, stream)
	next := make([]int, len(want))
	for k, m := range got {
		var g, i int
		if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &g, &i); err != nil || g < 0 || g >= len(want) {
			t.Fatalf("stream message %d is %q, not one of ours", k+1, m.Data)
		}
		if i != next[g] {
			t.Fatalf("stream message %d is %q: publisher %d's message %d, want its message %d (a loss, a duplicate or a reordering)%s",
				k+1, m.Data, g, i, next[g], around(got, k))
		}
		switch id := m.Header.Get(jetstream.MsgIDHeader); {
		case i < len(want[g]):
			if id != want[g][i].id {
				t.Fatalf("stream message %d %q has id %s, want %s", k+1, m.Data, id, want[g][i].id)
			}
		case i == len(want[g]) && extra != nil && extra[g]:
			// Stored, though its report never reached us.
		default:
			t.Fatalf("stream message %d %q: publisher %d reported only %d messages", k+1, m.Data, g, len(want[g]))
		}
		next[g]++
	}
	for g := range want {
		if next[g] < len(want[g]) {
			t.Errorf("publisher %d: stream holds %d of its %d messages", g, next[g], len(want[g]))
		}
	}
}
