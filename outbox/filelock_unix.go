//go:build unix

package outbox

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// errLocked is lockFile's answer when another holder keeps the lock past
// its wait.
var errLocked = errors.New("lock not granted")

// lockFile takes the exclusive lock bbolt takes (flock), waiting up to
// timeout, so that the file is checked while no other process writes it.
// The lock is the file description's: it ends when f is closed.
func lockFile(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			if err == syscall.EWOULDBLOCK {
				return errLocked
			}
			return err
		}
		// flock has no wait with a deadline; bbolt polls the same way.
		time.Sleep(50 * time.Millisecond)
	}
}
