//go:build unix

package natstest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The image build lock lives in the user's cache directory, private to the
// user.
func TestImageLockPathIsInTheUsersCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache) // os.UserCacheDir on Linux and the BSDs
	t.Setenv("HOME", cache)           // and on macOS, under Library/Caches
	path, err := imageLockPath()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, cache+string(filepath.Separator)) {
		t.Fatalf("lock file %s is not under the cache directory %s", path, cache)
	}
	info, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o700 {
		t.Fatalf("lock directory mode %v, want 0700", mode)
	}
}

func TestLockFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.lock")
	unlock, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The umask can only take permissions away from 0600.
	if mode := info.Mode().Perm(); mode&^0o600 != 0 {
		t.Fatalf("lock file mode %v, want at most 0600", mode)
	}
}

// A symbolic link planted where the lock file goes is refused, and the file
// it points to is left alone.
func TestLockFileRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "image.lock")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if unlock, err := lockFile(context.Background(), path); err == nil {
		unlock()
		t.Fatal("lockFile followed a symbolic link")
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "precious" {
		t.Fatalf("link target changed: %q, %v", data, err)
	}
}

// A lock held by someone else is waited for until the context ends, and the
// error then says which file was held; once released, it is taken.
func TestLockFileWaitIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.lock")
	// flock locks belong to an open file: a second open in this process
	// contends like another process would.
	unlockHolder, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*lockPollInterval)
	defer cancel()
	if unlock, err := lockFile(ctx, path); err == nil {
		unlock()
		t.Fatal("took a lock another holder has")
	} else if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v: want one naming %s and matching context.DeadlineExceeded", err, path)
	}

	acquired := make(chan func(), 1)
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	go func() {
		unlock, err := lockFile(waitCtx, path)
		if err != nil {
			t.Errorf("waiting for a released lock: %v", err)
			unlock = func() {}
		}
		acquired <- unlock
	}()
	unlockHolder()
	(<-acquired)()
}
