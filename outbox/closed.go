package outbox

import bolt "go.etcd.io/bbolt"

// What Stats reports after Close: the figures the file held when it was
// closed, rather than zeros, since the messages are still in it.

// fileFigures reads the queue's figures from the file or, once the file is
// closed, returns the ones it held then.
func (ob *Outbox) fileFigures() (snapshot, error) {
	if sn := ob.final.Load(); sn != nil {
		return *sn, nil
	}
	sn, err := ob.st.snapshot()
	if err != nil {
		if final := ob.final.Load(); final != nil {
			return *final, nil // closed meanwhile
		}
	}
	return sn, err
}

// recordFinal keeps the file's figures for Stats after Close. The forwarder
// calls it as it stops, after its own last write; Close has already marked
// the outbox closed. An empty write transaction is the barrier that makes
// the figures final: a Publish or Requeue that passed its closed check
// before Close has committed when the barrier begins (bbolt has one writer
// at a time), and one that begins after it finds the outbox closed inside
// its own transaction (refuseClosed) and stores nothing.
func (ob *Outbox) recordFinal() {
	if err := ob.st.update(func(*bolt.Tx) error { return nil }); err != nil {
		return // the file is closed already, or failing: Stats reports nothing
	}
	if sn, err := ob.st.snapshot(); err == nil {
		ob.final.Store(&sn)
	}
}

// refuseClosed is checked inside every transaction that adds to the queue:
// after Close began, nothing is added (see recordFinal).
func (ob *Outbox) refuseClosed() error {
	if ob.closed.Load() {
		return ErrClosed
	}
	return nil
}
