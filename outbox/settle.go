package outbox

import (
	"log/slog"
	"time"
)

// settler writes the forwarder's progress to the file on a goroutine of its
// own: acknowledged messages leave the queue, refused ones move to the dead
// letters, the sent mark advances. A commit waits for an fsync, and on a
// loaded disk that takes milliseconds; done on the forwarder's goroutine it
// would leave the window empty meanwhile. Batches are committed in the order
// they were handed over, so the sent mark only moves forward.
type settler struct {
	ob   *Outbox
	log  *slog.Logger
	in   chan settleBatch
	done chan struct{}
}

type settleBatch struct {
	acked    []uint64
	dead     []deadEntry
	sentHigh uint64
	reply    chan error // nil when nobody waits for the commit
}

func startSettler(ob *Outbox, log *slog.Logger) *settler {
	// One batch may wait while another commits; the forwarder gathers more
	// acknowledgements into its next batch meanwhile.
	s := &settler{ob: ob, log: log, in: make(chan settleBatch, 1), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *settler) run() {
	defer close(s.done)
	for b := range s.in {
		start := time.Now()
		var err error
		if len(b.acked) > 0 || len(b.dead) > 0 || b.sentHigh > 0 {
			err = s.ob.st.settle(b.acked, b.dead, b.sentHigh, time.Now())
		}
		if err != nil {
			s.log.Error("outbox: cannot record forwarding progress; those messages will be sent again", "err", err)
		} else {
			s.ob.deadLettered.Add(uint64(len(b.dead)))
			s.ob.progressed()
		}
		if b.reply != nil {
			b.reply <- err
		}
		// Space the commits out: each one syncs the disk, and on a disk the
		// server's store shares, back-to-back syncs slow the server down.
		// Meanwhile the forwarder gathers the next batch.
		if rest := settleInterval - time.Since(start); rest > 0 && b.reply == nil {
			time.Sleep(rest)
		}
	}
}

// settleInterval is the least time between two commits of forwarding
// progress. A delete that waits costs nothing but a later Flush return; one
// lost in a crash is a resend the stream drops as a duplicate.
const settleInterval = 20 * time.Millisecond

// stop commits what was handed over and ends the goroutine.
func (s *settler) stop() {
	close(s.in)
	<-s.done
}

// settleMode says how long the forwarder waits for its progress to be
// written.
type settleMode int

const (
	// settleIfFree hands the batch over only if the settler can take it
	// now; otherwise the forwarder keeps gathering.
	settleIfFree settleMode = iota
	// settleQueued hands the batch over, waiting for room but not for the
	// commit.
	settleQueued
	// settleSynced waits until this batch and every one before it is
	// committed.
	settleSynced
)

// settle hands the acknowledged and refused messages, with the sent mark, to
// the settler.
func (f *forwarder) settle(mode settleMode) error {
	idle := len(f.acked) == 0 && len(f.dead) == 0 && f.sentHigh == f.markedAt
	if idle && mode != settleSynced {
		return nil
	}
	b := settleBatch{acked: f.acked, dead: f.dead, sentHigh: f.sentHigh}
	switch mode {
	case settleIfFree:
		select {
		case f.settler.in <- b:
		default:
			return nil
		}
	case settleQueued:
		f.settler.in <- b
	case settleSynced:
		b.reply = make(chan error, 1)
		f.settler.in <- b
	}
	f.acked, f.dead, f.markedAt = nil, nil, f.sentHigh
	if b.reply != nil {
		return <-b.reply
	}
	return nil
}
