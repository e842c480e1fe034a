package outbox_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
	bolt "go.etcd.io/bbolt"
)

func TestOpenHeldPath(t *testing.T) {
	tc := natstest.NewTestClient(t)
	path := outboxPath(t)

	t.Run("same process", func(t *testing.T) {
		ob := openOutbox(t, tc.Client, path)
		_, err := outbox.Open(tc.Client, path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "already open") {
			t.Fatalf("second Open: %v, want an error naming %s as already open", err, path)
		}
		closeOutbox(t, ob)
		closeOutbox(t, openOutbox(t, tc.Client, path)) // free again after Close
	})

	t.Run("another process", func(t *testing.T) {
		c := startChild(t, childHold, path, tc.URL, 0, 0)
		start := time.Now()
		_, err := outbox.Open(tc.Client, path)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another process") {
			t.Fatalf("Open of a path another process holds: %v, want an error naming %s", err, path)
		}
		// The promise is "an error within a second or two"; the lock wait
		// is one second, and the bound leaves room for a loaded machine.
		if took > 5*time.Second {
			t.Errorf("Open took %v to fail", took)
		}
		c.stdin.Close()
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
		closeOutbox(t, openOutbox(t, tc.Client, path))
	})
}

func TestOpenForeignOrCorruptFile(t *testing.T) {
	tc := natstest.NewTestClient(t)
	t.Run("not a database", func(t *testing.T) {
		path := outboxPath(t)
		junk := bytes.Repeat([]byte("not an outbox "), 1000)
		if err := os.WriteFile(path, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := outbox.Open(tc.Client, path); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open of a junk file: %v, want an error naming %s", err, path)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, junk) {
			t.Errorf("the junk file was changed")
		}
	})
	t.Run("another bbolt file", func(t *testing.T) {
		path := outboxPath(t)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("theirs"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := outbox.Open(tc.Client, path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not an outbox") {
			t.Fatalf("Open of another program's bbolt file: %v, want an error naming %s", err, path)
		}
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket([]byte("theirs")).Get([]byte("k")); string(v) != "v" || tx.Bucket([]byte("meta")) != nil {
				t.Errorf("the foreign file was changed")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// An outbox this process holds, opened again through a symbolic link (to
// the file, or to its directory), is known at once as open here, not taken
// for another process's after the lock's timeout.
func TestOpenThroughASymlinkOfAHeldPath(t *testing.T) {
	tc := natstest.NewTestClient(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	ob := openOutbox(t, tc.Client, path)
	fileLink := filepath.Join(t.TempDir(), "link.db")
	dirLink := filepath.Join(t.TempDir(), "dir")
	for _, l := range [][2]string{{path, fileLink}, {dir, dirLink}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{fileLink, filepath.Join(dirLink, "outbox.db")} {
		start := time.Now()
		_, err := outbox.Open(tc.Client, p)
		if err == nil || !strings.Contains(err.Error(), "already open in this process") || !strings.Contains(err.Error(), path) {
			t.Errorf("Open through %s: %v, want an error naming %s as already open in this process", p, err, path)
		}
		// "At once": not the lock's wait of a second.
		if took := time.Since(start); took >= time.Second {
			t.Errorf("Open through %s took %v to fail", p, took)
		}
	}
	closeOutbox(t, ob)

	// A path that does not exist yet, through a link to its directory.
	fresh := filepath.Join(dirLink, "new.db")
	ob = openOutbox(t, tc.Client, fresh)
	if _, err := outbox.Open(tc.Client, filepath.Join(dir, "new.db")); err == nil || !strings.Contains(err.Error(), "already open in this process") {
		t.Errorf("Open of a new file by its real path while open through a link: %v, want already open", err)
	}
	closeOutbox(t, ob)
}
