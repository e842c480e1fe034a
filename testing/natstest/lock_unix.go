//go:build unix

package natstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockPollInterval is how often a held lock is tried again. flock cannot
// wait with a deadline, and a blocking flock in a goroutine could not be
// abandoned when the deadline passes.
const lockPollInterval = 100 * time.Millisecond

// lockFile takes an exclusive lock on path across processes, waiting for it
// until ctx ends. The file is created private to the user (0600) and never
// through a symbolic link, so that nobody can point it at another file.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("natstest: open lock file: %w", err)
	}
	tick := time.NewTicker(lockPollInterval)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("natstest: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("natstest: %s is still locked by another process (another test run building "+
				"the nats-server image?); gave up: %w", path, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
