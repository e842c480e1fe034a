package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	msgs := publishN(t, ob, subjectPfx+"c", "pending", n)
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
	cases := damages(len(good))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := outboxPath(t)
			bad := c.damage(bytes.Clone(good))
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			stream := resetStream(t, tc.URL)
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
			dead, err := ob.DeadLetters(natstest.Context(t, testTimeout))
			if err != nil {
				t.Fatalf("dead letters: %v", err)
			}
			checkPublishedInOrder(t, streamMsgs(t, tc.URL, stream), msgs, len(dead))
		})
	}
}

// damage is one way of damaging a file's bytes.
type damage struct {
	name   string
	damage func([]byte) []byte
}

// damages are the damages the tests apply to a file of size bytes: the
// cases of issue 18 and a few more.
func damages(size int) []damage {
	pages := size / filePageSize
	flip := func(page int, offsets ...int) func([]byte) []byte {
		return func(b []byte) []byte {
			for _, o := range offsets {
				b[page*filePageSize+o] ^= 0xA5
			}
			return b
		}
	}
	return []damage{
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
}

// checkPublishedInOrder asserts that got are published messages, byte for
// byte with their ids, in Publish order, and that with the dead letters
// they account for every message (unless dead is -1).
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
	if dead >= 0 && len(got)+dead != len(msgs) {
		t.Errorf("%d forwarded and %d dead letters, want %d in all", len(got), dead, len(msgs))
	}
}

// resetStream deletes the stream, and makes one of another name for the
// same subjects, on a connection of its own, and returns its name: a purge
// would keep the ids of its duplicate window, and a stream made again at
// once under the same name may find its old store still being removed.
var streamSeq int

func resetStream(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	js := natstest.JetStream(t, url)
	names := js.StreamNames(ctx)
	var old []string
	for n := range names.Name() {
		old = append(old, n)
	}
	if names.Err() != nil {
		t.Fatal(names.Err())
	}
	for _, n := range old {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	streamSeq++
	name := fmt.Sprintf("%s%d", streamName, streamSeq)
	// In memory: a file store's removal can still be under way when the
	// next one is made (the server's 10049, "error creating store").
	cfg := jetstream.StreamConfig{Name: name, Subjects: []string{subjectPfx + ">"}, Storage: jetstream.MemoryStorage}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return name
}

// With WithSalvage, Open of a damaged file succeeds: the file is moved aside
// unchanged, the messages that can be verified are forwarded, in order, and
// the counts add up.
func TestSalvageKeepsWhatItCanVerify(t *testing.T) {
	tc := newEnv(t)
	good, msgs := pendingFile(t, tc, 200)
	for _, c := range damages(len(good)) {
		t.Run(c.name, func(t *testing.T) {
			path := outboxPath(t)
			bad := c.damage(bytes.Clone(good))
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			stream := resetStream(t, tc.URL)
			ob := openOutbox(t, tc.Client, path, outbox.WithSalvage())
			s, salvaged := ob.Salvaged()
			if _, err := outbox.Open(tc.Client, path); err == nil {
				t.Fatal("a second Open succeeded")
			}
			if !salvaged {
				t.Logf("not damaged enough to salvage: %+v", ob.Stats())
			} else {
				t.Logf("salvage: pending %d, dead %d, set aside %d, lost %d", s.Pending, s.DeadLetters, s.SetAside, s.Lost)
				if !errors.Is(s.Cause, outbox.ErrCorrupt) || filepath.Dir(s.MovedTo) != filepath.Dir(path) || !strings.HasPrefix(filepath.Base(s.MovedTo), "outbox.db.corrupt-") {
					t.Errorf("salvage %+v: want a cause matching ErrCorrupt and the file moved beside the path, named as damaged", s)
				}
				if aside, _ := os.ReadFile(s.MovedTo); !bytes.Equal(aside, bad) {
					t.Error("the file moved aside is not the damaged file as it was")
				}
				if s.Lost >= 0 && s.Pending+s.SetAside+s.Lost != len(msgs) {
					t.Errorf("salvage %+v: the counts do not add up to the %d messages", s, len(msgs))
				}
			}
			flush(t, ob)
			dead, err := ob.DeadLetters(natstest.Context(t, testTimeout))
			if err != nil {
				t.Fatalf("dead letters: %v", err)
			}
			got := streamMsgs(t, tc.URL, stream)
			checkPublishedInOrder(t, got, msgs, -1)
			if salvaged && (len(got) != s.Pending || len(dead) != s.SetAside) {
				t.Errorf("%d forwarded and %d dead letters, where the salvage kept %d and set %d aside", len(got), len(dead), s.Pending, s.SetAside)
			}
			if !salvaged && len(got)+len(dead) != len(msgs) {
				t.Errorf("%d forwarded and %d dead letters, want %d in all", len(got), len(dead), len(msgs))
			}
		})
	}
}
