package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// filePageSize is the bbolt page size of an outbox file (store.go).
const filePageSize = 64 << 10

// pendingFile writes an outbox file holding n pending messages, with the
// server down, and returns its bytes and the messages.
func pendingFile(t *testing.T, tc *natstest.TestClient, n int) ([]byte, []sent) {
	t.Helper()
	path := outboxPath(t)
	tc.Server.Stop()
	defer tc.Server.Start()
	ob := openOutbox(t, tc.Client, path)
	msgs := publishN(t, ob, "c", "pending", n)
	closeOutbox(t, ob)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, msgs
}

// The cases of issue 18, each of which crashed the process: a damaged file
// is an error matching ErrCorrupt that names the path, and stays as it was;
// or, where the damage is in records only, Open succeeds and forwards
// nothing that was not published, the damaged records moved to the dead
// letters.
func TestDamagedFileIsAnErrorNotACrash(t *testing.T) {
	tc := newEnv(t)
	good, msgs := pendingFile(t, tc, 200)
	pages := len(good) / filePageSize
	flip := func(page int, offsets ...int) func([]byte) []byte {
		return func(b []byte) []byte {
			for _, o := range offsets {
				b[page*filePageSize+o] ^= 0xA5
			}
			return b
		}
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"undamaged", func(b []byte) []byte { return b }},
		{"cut to a third", func(b []byte) []byte { return b[:len(b)/3] }},
		{"cut to two pages", func(b []byte) []byte { return b[:2*filePageSize] }},
		{"cut mid-page", func(b []byte) []byte { return b[:len(b)-filePageSize/2] }},
		{"bytes flipped in page 2", flip(2, 10, 20, 30, 4000)},
		{"bytes flipped in page 3", flip(3, 10, 20, 30, 4000)},
		{"bytes flipped in page 4", flip(4, 10, 20, 30, 4000)},
		{"bytes flipped in page 5", flip(5, 10, 20, 30, 4000)},
		{"meta pages flipped", func(b []byte) []byte { b[20] ^= 1; b[filePageSize+20] ^= 1; return b }},
		{"last page zeroed", func(b []byte) []byte { clear(b[(pages-1)*filePageSize:]); return b }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := outboxPath(t)
			bad := c.damage(bytes.Clone(good))
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			resetStream(t, tc.URL)
			ob, err := outbox.Open(tc.Client, path)
			if err != nil {
				if !errors.Is(err, outbox.ErrCorrupt) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Open: %v, want an error matching ErrCorrupt naming %s", err, path)
				}
				t.Log(err)
				if now, _ := os.ReadFile(path); !bytes.Equal(now, bad) {
					t.Fatal("Open changed the damaged file")
				}
				return
			}
			defer closeOutbox(t, ob)
			t.Logf("opened: %+v", ob.Stats())
			flush(t, ob)
			dead, err := ob.DeadLetters(testContext(t))
			if err != nil {
				t.Fatalf("dead letters: %v", err)
			}
			checkPublishedInOrder(t, streamMsgs(t, tc.URL, streamName), msgs, len(dead))
		})
	}
}

// checkPublishedInOrder asserts that got are published messages, byte for
// byte with their ids, in Publish order, and that with the dead letters
// they account for every message.
func checkPublishedInOrder(t *testing.T, got []*nats.Msg, msgs []sent, dead int) {
	t.Helper()
	i := 0
	for _, g := range got {
		for i < len(msgs) && msgs[i].id != g.Header.Get("Nats-Msg-Id") {
			i++
		}
		if i == len(msgs) || string(g.Data) != msgs[i].data {
			t.Fatalf("the stream holds %q (id %s): not a published message, or out of order", g.Data, g.Header.Get("Nats-Msg-Id"))
		}
	}
	if len(got)+dead != len(msgs) {
		t.Errorf("%d forwarded and %d dead letters, want %d in all", len(got), dead, len(msgs))
	}
}

// resetStream makes the stream anew, on a connection of its own: a purge
// would keep the ids of its duplicate window.
func resetStream(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, streamName); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{subjectPfx + ">"}}); err != nil {
		t.Fatal(err)
	}
}
