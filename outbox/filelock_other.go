//go:build !unix

package outbox

import (
	"errors"
	"os"
	"time"
)

var errLocked = errors.New("lock not granted")

// lockFile does nothing where bbolt's lock is not flock: the check then
// reads a file another process may be writing, and bbolt's own lock, taken
// next, still refuses a second writer.
func lockFile(*os.File, time.Duration) error { return nil }
