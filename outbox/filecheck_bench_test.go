package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkOpenCheck measures what checking a file's structure adds to Open,
// for a file of pending records of 200-byte payloads: OUTBOX_CHECK_MB sets
// its size (default 256 MiB). It reports the check alone and bbolt's Open.
func BenchmarkOpenCheck(b *testing.B) {
	mb := 256
	if v := os.Getenv("OUTBOX_CHECK_MB"); v != "" {
		fmt.Sscan(v, &mb)
	}
	path := filepath.Join(b.TempDir(), "big.db")
	st, _, err := openStore(path, false)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 200)
	var written int64
	for written < int64(mb)<<20 {
		err := st.db.Update(func(tx *bolt.Tx) error {
			for range 20000 {
				a, err := st.admit(tx, &record{subject: "out.bench", data: payload, enqueued: time.Now()}, "", 1<<40, Reject)
				if err != nil {
					return err
				}
				_ = a
				written += 250
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	st.close()
	info, _ := os.Stat(path)
	b.Logf("file of %d MiB", info.Size()>>20)
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if err := checkFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bbolt-open", func(b *testing.B) {
		for b.Loop() {
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
}
