package outbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The second line of defence: a file damaged while it is open (here cut
// short under bbolt, past the pages it has mapped) faults on the mapped
// memory, and bbolt calls on the outbox's goroutines return ErrCorrupt
// instead of ending the process; the store still closes.
func TestFaultOnTheMappedFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	st, _, err := openStore(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	payload := make([]byte, 4000)
	for range 64 { // more than a page of records: the pending bucket has a page of its own
		if err := st.update(func(tx *bolt.Tx) error {
			_, err := st.admit(tx, &record{subject: "out.x", data: payload, enqueued: time.Now()}, "", 1<<30, Reject)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if recs, err := st.page(0, 100); err != nil || len(recs) != 64 {
		t.Fatalf("page before the damage: %d records, %v", len(recs), err)
	}
	// Keep the meta pages (bbolt reads them while it holds its meta lock,
	// where a panic would leave the lock held) and cut everything else.
	if err := os.Truncate(path, 2*filePageSize); err != nil {
		t.Fatal(err)
	}
	if _, err := st.page(0, 100); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("page after the file was cut: %v, want ErrCorrupt", err)
	}
	if _, err := st.snapshot(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot after the file was cut: %v, want ErrCorrupt", err)
	}
}
