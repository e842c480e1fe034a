package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// fuzzBase is the file the fuzz target damages, made once per process: a
// dead letter (a subject no stream captures) and fuzzPending pending
// messages, some with headers, written while the server was down.
var fuzzBase struct {
	once   sync.Once
	tc     *natstest.TestClient
	file   []byte
	msgs   map[string]outbox.QueuedMsg // by id: every message published
	order  map[string]int              // an id's place in Publish order
	refusd outbox.QueuedMsg
	dir    string // where each input's files are written, emptied after it
}

const fuzzPending = 120

func fuzzSetup(f *testing.F) {
	fuzzBase.once.Do(func() {
		// Embedded whatever the backend: the server only makes the file
		// (a dead letter), and a container per fuzz worker would cost more
		// than the inputs.
		tc := newEnv(f, natstest.WithBackend(natstest.Embedded))
		fuzzBase.tc = tc
		fuzzBase.msgs = map[string]outbox.QueuedMsg{}
		fuzzBase.order = map[string]int{}
		fuzzBase.dir = f.TempDir()
		path := filepath.Join(f.TempDir(), "base.db")
		ob := openOutbox(f, tc.Client, path)
		ctx := natstest.Context(f, testTimeout)
		id, err := ob.Publish(ctx, "nostream.x", []byte("refused"))
		if err != nil {
			f.Fatal(err)
		}
		fuzzBase.refusd = outbox.QueuedMsg{ID: id, Subject: "nostream.x", Data: "refused"}
		flush(f, ob)
		tc.Server.Stop() // the client stays down: forwarding never starts
		for i := range fuzzPending {
			m := &nats.Msg{Subject: subjectPfx + "f." + strconv.Itoa(i%3), Data: bytes.Repeat([]byte{byte('a' + i%26)}, 20+i)}
			if i%5 == 0 {
				m.Header = nats.Header{"K": []string{strconv.Itoa(i)}}
			}
			id, err := ob.PublishMsg(ctx, m)
			if err != nil {
				f.Fatal(err)
			}
			fuzzBase.msgs[id] = outbox.QueuedMsg{ID: id, Subject: m.Subject, Data: string(m.Data), Header: m.Header}
			fuzzBase.order[id] = i
		}
		closeOutbox(f, ob)
		if fuzzBase.file, err = os.ReadFile(path); err != nil {
			f.Fatal(err)
		}
	})
}

// Damage kinds of FuzzDamagedFile.
const (
	fuzzTruncate = iota // to at/65536 of the file
	fuzzFlip            // xor val into the byte at (page, at)
	fuzzZeroPage        // the whole page
	fuzzFill            // n bytes of val from (page, at)
	fuzzKinds
)

// FuzzDamagedFile damages a real outbox file (truncations, flipped bytes
// in any page, zeroed pages, runs of bytes) and holds Open, what forwarding
// reads, DeadLetters and Publish to "an error or correct data, never a
// crash": Open fails (the file left as it was) or succeeds, and then every
// record the forwarder would send is a published message, byte for byte,
// in Publish order; every readable dead letter is a message that was
// published; a Publish is stored or refused. Open WithSalvage is held to
// the same. Forwarding itself is what Queued reads (store.page, as the
// forwarder does): the tests of damaged files forward through a server.
func FuzzDamagedFile(f *testing.F) {
	fuzzSetup(f)
	pages := uint16(len(fuzzBase.file) / filePageSize)
	for p := range pages {
		for _, at := range []uint16{0, 8, 10, 12, 16, 20, 40, 100, 1000, 4096, 40000} {
			f.Add(uint8(fuzzFlip), p, at, uint16(1), uint8(0xA5))
		}
		f.Add(uint8(fuzzZeroPage), p, uint16(0), uint16(0), uint8(0))
		f.Add(uint8(fuzzFill), p, uint16(16), uint16(64), uint8(0xFF))
	}
	for _, at := range []uint16{65535 / 3, uint16(2 * 65536 / int(pages)), 65535 / 2, 60000, 65000} {
		f.Add(uint8(fuzzTruncate), uint16(0), at, uint16(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, kind uint8, page, at, n uint16, val uint8) {
		bad := damageFile(fuzzBase.file, kind, page, at, n, val)
		for _, salvage := range []bool{false, true} {
			// One directory for every input, emptied after each (a
			// directory per input costs more than the input).
			emptyDir(t, fuzzBase.dir)
			path := filepath.Join(fuzzBase.dir, "outbox.db")
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			opts := []outbox.Option{outbox.WithLogger(slog.New(slog.DiscardHandler))}
			if salvage {
				opts = append(opts, outbox.WithSalvage())
			}
			ob, err := outbox.Open(fuzzBase.tc.Client, path, opts...)
			if err != nil {
				if now, _ := os.ReadFile(path); !bytes.Equal(now, bad) {
					t.Fatalf("Open (salvage %v) failed (%v) and changed the file", salvage, err)
				}
				continue
			}
			checkDamagedOutbox(t, ob)
			return // opened without salvage: with it, Open would do the same
		}
	})
}

func emptyDir(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func damageFile(good []byte, kind uint8, page, at, n uint16, val uint8) []byte {
	b := bytes.Clone(good)
	pages := len(b) / filePageSize
	start := int(page)%pages*filePageSize + int(at)%filePageSize
	switch kind % fuzzKinds {
	case fuzzTruncate:
		return b[:len(b)*int(at)/65536]
	case fuzzFlip:
		b[start] ^= max(val, 1)
	case fuzzZeroPage:
		p := int(page) % pages * filePageSize
		clear(b[p : p+filePageSize])
	case fuzzFill:
		for i := start; i < min(len(b), start+int(n)%4096); i++ {
			b[i] = val
		}
	}
	return b
}

// checkDamagedOutbox holds an outbox opened on a damaged file to "an error
// or correct data".
func checkDamagedOutbox(t *testing.T, ob *outbox.Outbox) {
	t.Helper()
	ctx := context.Background()
	defer func() {
		if err := ob.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	queued, _, err := outbox.Queued(ob)
	if err != nil && !errors.Is(err, outbox.ErrCorrupt) {
		t.Fatalf("reading the queue: %v, want nil or ErrCorrupt", err)
	}
	checkQueued(t, queued, nil)

	dead, err := ob.DeadLetters(ctx)
	if err != nil && !errors.Is(err, outbox.ErrCorrupt) {
		t.Fatalf("dead letters: %v, want nil or ErrCorrupt", err)
	}
	for _, d := range dead {
		if d.Subject == "" {
			continue // undecodable: its bytes as stored, not a message
		}
		got := outbox.QueuedMsg{ID: d.ID, Subject: d.Subject, Data: string(d.Data), Header: d.Header}
		want, ok := fuzzBase.msgs[d.ID]
		if d.ID == fuzzBase.refusd.ID {
			want, ok = fuzzBase.refusd, true
		}
		if !ok || !sameMsg(got, want) {
			t.Fatalf("dead letter %+v is not a published message", got)
		}
	}

	id, err := ob.Publish(ctx, subjectPfx+"after", []byte("after"))
	if err != nil {
		if errors.Is(err, natsclient.ErrInvalidArgument) {
			t.Fatalf("publish: %v", err)
		}
		return // refused: an error, not garbage
	}
	after, _, err := outbox.Queued(ob)
	if err != nil {
		return
	}
	checkQueued(t, after, &outbox.QueuedMsg{ID: id, Subject: subjectPfx + "after", Data: "after"})
}

// checkQueued asserts that queued are published messages, byte for byte, in
// Publish order, with extra (a message published after Open) last.
func checkQueued(t *testing.T, queued []outbox.QueuedMsg, extra *outbox.QueuedMsg) {
	t.Helper()
	if extra != nil {
		if len(queued) == 0 || !sameMsg(queued[len(queued)-1], *extra) {
			t.Fatalf("the message published after Open is not last in the queue: %d queued", len(queued))
		}
		queued = queued[:len(queued)-1]
	}
	prev := -1
	for _, q := range queued {
		want, ok := fuzzBase.msgs[q.ID]
		if !ok || !sameMsg(q, want) {
			t.Fatalf("the forwarder would send %+v: not a published message", q)
		}
		if at := fuzzBase.order[q.ID]; at <= prev {
			t.Fatalf("the forwarder would send %s after a later message", q.ID)
		} else {
			prev = at
		}
	}
}

func sameMsg(a, b outbox.QueuedMsg) bool {
	if len(a.Header) == 0 && len(b.Header) == 0 {
		a.Header, b.Header = nil, nil
	}
	return a.ID == b.ID && a.Subject == b.Subject && a.Data == b.Data && reflect.DeepEqual(a.Header, b.Header)
}
