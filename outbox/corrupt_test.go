package outbox_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	bolt "go.etcd.io/bbolt"
)

// A record the file holds but the outbox cannot decode (a damaged file) must
// not stop forwarding: it goes to the dead letters with a reason, and the
// messages behind it reach the stream.
func TestUndecodableRecord(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	tc.Server.Stop()
	ob := openOutbox(t, tc.Client, path)
	msgs := publishN(t, ob, subjectPfx+"c", "m", 4)
	closeOutbox(t, ob)

	// Damage the second and third records with bbolt itself, in the closed
	// file: an unknown format version, and a record cut short.
	garbage := [][]byte{{0x7f, 1, 2, 3}, {1, 0, 0}}
	rewritePending(t, path, func(stored [][]byte) map[int][]byte {
		if len(stored) != len(msgs) {
			t.Fatalf("the file holds %d pending records, want %d", len(stored), len(msgs))
		}
		return map[int][]byte{1: garbage[0], 2: garbage[1]}
	})

	tc.Server.Start()
	ob = openOutbox(t, tc.Client, path)
	flush(t, ob)
	checkStream(t, tc.URL, streamName, []sent{msgs[0], msgs[3]})
	if st := ob.Stats(); st.DeadLettered != 2 || st.Pending != 0 {
		t.Errorf("stats %+v, want 2 dead-lettered and nothing pending", st)
	}

	ctx := natstest.Context(t, testTimeout)
	dead, err := ob.DeadLetters(ctx)
	if err != nil {
		t.Fatalf("dead letters: %v", err)
	}
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2: %+v", len(dead), dead)
	}
	for i, d := range dead {
		want := msgs[1+i]
		if d.ID != want.id || !strings.Contains(d.Err, "cannot be decoded") || !bytes.Equal(d.Data, garbage[i]) || d.At.IsZero() {
			t.Errorf("dead letter %d is %+v, want id %s, the stored bytes %v and a reason that says it cannot be decoded", i, d, want.id, garbage[i])
		}
	}
	if err := ob.Requeue(ctx, dead[0].ID); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("requeue of an undecodable letter: %v, want an error that says it is corrupt", err)
	}
	for _, d := range dead {
		if err := ob.Discard(ctx, d.ID); err != nil {
			t.Errorf("discard %s: %v", d.ID, err)
		}
	}
	if err := ob.Discard(ctx, dead[0].ID); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Errorf("discard of a discarded letter: %v, want ErrInvalidArgument", err)
	}
}

// A record whose bytes changed on disk after it was stored (a payload byte
// flipped; a record moved under another record's key; a record of the format
// without a checksum where the file has checksums) fails its check on read:
// it goes to the dead letters with its bytes, and is never forwarded.
func TestRecordThatFailsItsChecksumIsDeadLettered(t *testing.T) {
	tc := newEnv(t)
	path := outboxPath(t)
	tc.Server.Stop()
	ob := openOutbox(t, tc.Client, path)
	msgs := publishN(t, ob, subjectPfx+"c", "payload", 5)
	closeOutbox(t, ob)

	var stored [][]byte
	rewritePending(t, path, func(s [][]byte) map[int][]byte {
		flipped := bytes.Clone(s[1])
		flipped[len(flipped)-1] ^= 0x01 // "payload-1" becomes "payload-0"
		s[1] = flipped
		s[2] = s[0]                            // message 0's record, under message 2's key
		s[3] = append([]byte{1}, s[3][13:]...) // the v1 layout, no checksum
		stored = s
		return map[int][]byte{1: s[1], 2: s[2], 3: s[3]}
	})

	tc.Server.Start()
	ob = openOutbox(t, tc.Client, path)
	flush(t, ob)
	checkStream(t, tc.URL, streamName, []sent{msgs[0], msgs[4]})
	dead, err := ob.DeadLetters(natstest.Context(t, testTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(dead), dead)
	}
	for i, d := range dead {
		if d.ID != msgs[1+i].id || !bytes.Equal(d.Data, stored[1+i]) || !strings.Contains(d.Err, "cannot be decoded") {
			t.Errorf("dead letter %d is %+v, want id %s, the stored bytes and a reason that says it cannot be decoded", i, d, msgs[1+i].id)
		}
	}
}

// rewritePending damages a closed outbox file with bbolt itself: edit gets
// the stored bytes of the pending records, in the file's order, and returns
// the ones to store instead, by index.
func rewritePending(t *testing.T, path string, edit func(stored [][]byte) map[int][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("pending"))
		if b == nil {
			return errors.New("no pending bucket")
		}
		var keys, stored [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			keys = append(keys, bytes.Clone(k))
			stored = append(stored, bytes.Clone(v))
			return nil
		})
		for i, v := range edit(stored) {
			if err := b.Put(keys[i], v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("damage the file: %v", err)
	}
}
