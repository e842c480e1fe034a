package outbox

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The file holds three buckets: pending messages keyed by their sequence
// (big-endian, so a cursor walks them in Publish order), dead letters keyed by
// id, and meta: the format mark, this file's origin (the prefix of every id),
// the pending count and bytes, and the forwarder's sent mark.
var (
	pendingBucket = []byte("pending")
	deadBucket    = []byte("dead")
	metaBucket    = []byte("meta")

	formatKey  = []byte("format")
	legacyKey  = []byte("legacy.until")
	originKey  = []byte("origin")
	countKey   = []byte("count")
	bytesKey   = []byte("bytes")
	sentSeqKey = []byte("sent.seq")
	sentAtKey  = []byte("sent.at")
)

// formatMark is the file's format: 2 since records carry a checksum. A file
// of format 1 (legacyFormatMark) is upgraded in place by Open, its records
// kept as they are (see store.legacyUntil); a version of this package that
// knows only format 1 refuses a file of format 2 rather than misread it.
const (
	formatMark       = "natsclient-outbox/2"
	legacyFormatMark = "natsclient-outbox/1"
)

// lockTimeout bounds how long Open waits for the file lock another process
// holds: long enough to ride out a process that is just closing it, short
// enough that a held path is an error, not a hang.
const lockTimeout = time.Second

// batchDelay is how long bbolt's Batch waits for more callers before it
// commits. Callers that arrive while a commit is syncing join the next batch
// anyway, so the wait only adds latency to a lone publisher: keep it short.
const batchDelay = time.Millisecond

// openPaths are the files this process has open. bbolt's flock would refuse
// a second Open of one path too, but only after its timeout; within one
// process the answer is known at once.
var openPaths sync.Map

// store is the outbox's file. Every change is one bbolt transaction, and the
// pending count and bytes live in the file beside the messages, so that the
// budget is checked in the same transaction that adds to it.
type store struct {
	db     *bolt.DB
	path   string
	origin string
	// legacyUntil is the last sequence that may hold a record without a
	// checksum (recordV1): the last one handed out when a file of format 1
	// was upgraded, 0 in a file made with checksums.
	legacyUntil uint64
}

// filePageSize is the bbolt page size of a new outbox file (an existing
// file keeps the one it was made with). bbolt keeps an entry in memory for
// each free page of its file, and a file never shrinks: after a backlog
// drains, its pages are free. With bbolt's default of 4 KiB, draining 1 GB
// left 20–30 MB of that bookkeeping in the heap; with 64 KiB pages, one
// sixteenth, and the outbox's memory stays flat (docs/design.md, "Store-and-forward").
// Enqueueing and forwarding measured the same with either size.
const filePageSize = 64 << 10

// openStore opens the outbox file at path. A damaged one is an error
// matching ErrCorrupt, or, with salvage, is moved aside and what can be
// verified of it kept in a new file (salvage.go), which is opened.
func openStore(path string, salvage bool) (*store, *Salvage, error) {
	abs, err := resolvePath(path)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	if _, busy := openPaths.LoadOrStore(abs, true); busy {
		return nil, nil, fmt.Errorf("outbox: open %s: already open in this process (one Outbox per file)", abs)
	}
	s, err := openChecked(abs)
	var saved *Salvage
	if errors.Is(err, ErrCorrupt) && salvage {
		if saved, err = salvageFile(abs, err); err != nil {
			err = fmt.Errorf("outbox: open %s: %w: salvage: %w", abs, ErrCorrupt, err)
		} else {
			s, err = openChecked(abs)
		}
	}
	if err != nil {
		openPaths.Delete(abs)
		return nil, nil, err
	}
	return s, saved, nil
}

// openChecked opens the file at abs (an absolute, resolved path) once its
// structure has been checked (checkFile), with bbolt's panics and faults on
// the mapped file turned into errors matching ErrCorrupt.
func openChecked(abs string) (*store, error) {
	if err := checkFile(abs); err != nil {
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("outbox: open %s: another process holds it (lock not granted within %v): %w", abs, lockTimeout, err)
		}
		return nil, corruptErr(abs, err)
	}
	var db *bolt.DB
	err := contain(abs, func() (err error) {
		db, err = bolt.Open(abs, 0o600, &bolt.Options{Timeout: lockTimeout, PageSize: filePageSize})
		return err
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("outbox: open %s: another process holds it (lock not granted within %v): %w", abs, lockTimeout, err)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
			return nil, corruptErr(abs, err)
		case errors.Is(err, ErrCorrupt):
			return nil, err
		}
		return nil, fmt.Errorf("outbox: open %s: %w", abs, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &store{db: db, path: abs}
	// A file of the current format is only read: Open costs no commit.
	initTx := s.update
	if err := s.view(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(metaBucket); meta != nil && bytes.Equal(meta.Get(formatKey), []byte(formatMark)) {
			initTx = s.view
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	if err := initTx(s.init); err != nil {
		db.Close()
		if errors.Is(err, errMissingBucket) {
			return nil, corruptErr(abs, err)
		}
		return nil, fmt.Errorf("outbox: open %s: %w", abs, err)
	}
	return s, nil
}

// corruptErr is Open's error for a damaged file at path.
func corruptErr(path string, why error) error {
	return fmt.Errorf("outbox: open %s: %w: %w (left untouched)", path, ErrCorrupt, why)
}

// contain runs fn, which calls bbolt on the file at path, with a fault on
// its mapped memory turned into a panic (runtime/debug.SetPanicOnFault) and
// a panic turned into an error matching ErrCorrupt: bbolt trusts the bytes
// of its file, and a damaged file must not end the process. checkFile finds
// damage before bbolt does; this catches what it may miss, in the calls
// made on the caller's goroutine (bbolt's Batch commits on its own, which
// nothing can guard).
func contain(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("outbox: %s: %w: bbolt: %v", path, ErrCorrupt, p)
		}
	}()
	return fn()
}

// view and update are bbolt's View and Update, contained.
func (s *store) view(fn func(*bolt.Tx) error) error {
	return contain(s.path, func() error { return s.db.View(fn) })
}

func (s *store) update(fn func(*bolt.Tx) error) error {
	return contain(s.path, func() error { return s.db.Update(fn) })
}

// errMissingBucket is init's answer for a file with an outbox's meta bucket
// and not the others: a damaged outbox.
var errMissingBucket = errors.New("the pending or dead-letter bucket is missing")

// resolvePath returns the absolute path of the file that path names, with
// symbolic links resolved, so that one file reached by two paths (a link
// and its target) is known as one in openPaths: otherwise a second Open
// through a link would wait for the file lock this process holds and call
// it another process's. A path that does not exist yet is resolved through
// its directory.
func resolvePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// init formats a new file, or checks that an existing one is an outbox: a
// bbolt file of someone else's is refused, not written to.
func (s *store) init(tx *bolt.Tx) error {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return errors.New("a bbolt file that is not an outbox (left untouched)")
		}
		var err error
		if meta, err = tx.CreateBucket(metaBucket); err != nil {
			return err
		}
		var origin [8]byte
		if _, err := rand.Read(origin[:]); err != nil {
			return err
		}
		for _, kv := range [][2][]byte{
			{formatKey, []byte(formatMark)},
			{originKey, []byte(hex.EncodeToString(origin[:]))},
		} {
			if err := meta.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{pendingBucket, deadBucket} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
	}
	if tx.Bucket(pendingBucket) == nil || tx.Bucket(deadBucket) == nil {
		return errMissingBucket
	}
	switch f := meta.Get(formatKey); {
	case bytes.Equal(f, []byte(formatMark)):
	case bytes.Equal(f, []byte(legacyFormatMark)):
		// Records stored so far have no checksum; those written from now
		// on have one.
		if err := putInt(meta, legacyKey, int64(tx.Bucket(pendingBucket).Sequence())); err != nil {
			return err
		}
		if err := meta.Put(formatKey, []byte(formatMark)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("format %q, want %q (left untouched)", f, formatMark)
	}
	s.legacyUntil = uint64(getInt(meta, legacyKey))
	s.origin = string(meta.Get(originKey))
	return nil
}

func (s *store) close() error {
	err := s.db.Close()
	openPaths.Delete(s.path)
	return err
}

// msgID is the Nats-Msg-Id of the message stored at seq: unique to this file
// (its random origin) and within it (bbolt's sequences never repeat).
func (s *store) msgID(seq uint64) string {
	return s.origin + "-" + strconv.FormatUint(seq, 10)
}

// counters are the pending count and bytes, kept in the meta bucket.
type counters struct{ count, bytes int64 }

func readCounters(tx *bolt.Tx) counters {
	meta := tx.Bucket(metaBucket)
	return counters{count: getInt(meta, countKey), bytes: getInt(meta, bytesKey)}
}

func (c counters) write(tx *bolt.Tx) error {
	meta := tx.Bucket(metaBucket)
	if err := putInt(meta, countKey, c.count); err != nil {
		return err
	}
	return putInt(meta, bytesKey, c.bytes)
}

func getInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putInt(b *bolt.Bucket, k []byte, v int64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(v)))
}

// admission is what putting one message did.
type admission struct {
	seq     uint64
	id      string
	full    bool // refused: no room under Reject, or larger than the budget
	dropped []uint64
}

// admit stores a message at the end of the queue inside tx, keeping the
// pending bytes within maxBytes by policy. id is kept when given (a requeued
// dead letter) and otherwise made from the new sequence. It may run more than
// once for one call (bbolt's Batch retries a failed batch call by call), so it
// keeps nothing between runs.
func (s *store) admit(tx *bolt.Tx, r *record, id string, maxBytes int64, policy Overflow) (admission, error) {
	pending := tx.Bucket(pendingBucket)
	c := readCounters(tx)
	seq, err := pending.NextSequence()
	if err != nil {
		return admission{}, err
	}
	r.seq, r.id = seq, id
	if id == "" {
		r.id = s.msgID(seq)
	}
	v := r.encode()
	size := int64(len(v))
	a := admission{seq: seq, id: r.id}
	if size > maxBytes {
		a.full = true
		return a, nil
	}
	if c.bytes+size > maxBytes {
		if policy == Reject {
			a.full = true
			return a, nil
		}
		cur := pending.Cursor()
		for k, old := cur.First(); k != nil && c.bytes+size > maxBytes; k, old = cur.First() {
			c.bytes -= int64(len(old))
			c.count--
			a.dropped = append(a.dropped, keySeq(k))
			if err := cur.Delete(); err != nil {
				return admission{}, err
			}
		}
	}
	if err := pending.Put(seqKey(seq), v); err != nil {
		return admission{}, err
	}
	c.count++
	c.bytes += size
	return a, c.write(tx)
}

// page reads up to n pending records with sequences above after, in order.
// A record that cannot be decoded is returned with its corrupt field set and
// the id its sequence gives, so that the forwarder can move it aside rather
// than stop at it. The records of a page share their memory (pageArena).
func (s *store) page(after uint64, n int) ([]*record, error) {
	recs := make([]*record, 0, n)
	err := s.view(func(tx *bolt.Tx) error {
		slots := make([]record, 0, n)
		var arena pageArena
		cur := tx.Bucket(pendingBucket).Cursor()
		for k, v := cur.Seek(seqKey(after + 1)); k != nil && len(recs) < n; k, v = cur.Next() {
			seq := keySeq(k)
			slots = append(slots, record{})
			r := &slots[len(slots)-1]
			if err := decodeRecordInto(r, seq, v, &arena, s.legacyUntil); err != nil {
				*r = record{seq: seq, id: s.msgID(seq), corrupt: err}
			}
			recs = append(recs, r)
		}
		return nil
	})
	return recs, err
}

// removePending deletes seq from the pending bucket inside tx, if it is still
// there (a DropOldest may have taken it), and returns the stored record's
// bytes, or nil.
func removePending(tx *bolt.Tx, c *counters, seq uint64) ([]byte, error) {
	pending := tx.Bucket(pendingBucket)
	k := seqKey(seq)
	v := pending.Get(k)
	if v == nil {
		return nil, nil
	}
	v = bytes.Clone(v)
	c.count--
	c.bytes -= int64(len(v))
	return v, pending.Delete(k)
}

// dropAcked deletes the acknowledged seqs from the pending bucket inside tx,
// each found by one cursor seek and neither read nor copied: a settle of a
// run of acks is most of what forwarding writes. A seq no longer there (a
// DropOldest took it) is skipped.
func dropAcked(tx *bolt.Tx, c *counters, seqs []uint64) error {
	cur := tx.Bucket(pendingBucket).Cursor()
	for _, seq := range slices.Backward(seqs) {
		key := seqKey(seq)
		k, v := cur.Seek(key)
		if !bytes.Equal(k, key) {
			continue
		}
		c.count--
		c.bytes -= int64(len(v))
		if err := cur.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// deadEntry is a refused message on its way to the dead-letter bucket.
type deadEntry struct {
	seq   uint64
	id    string
	cause string
	at    time.Time
}

// settle records the forwarder's progress in one transaction: acknowledged
// messages leave the queue, refused ones move to the dead letters, and the
// sent mark advances (see forwarder.resend).
func (s *store) settle(acked []uint64, dead []deadEntry, sentSeq uint64, sentAt time.Time) error {
	return s.update(func(tx *bolt.Tx) error {
		c := readCounters(tx)
		if err := dropAcked(tx, &c, acked); err != nil {
			return err
		}
		deadB := tx.Bucket(deadBucket)
		for _, d := range dead {
			v, err := removePending(tx, &c, d.seq)
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			if err := deadB.Put([]byte(d.id), encodeDead(d.at, d.cause, v)); err != nil {
				return err
			}
		}
		if sentSeq > 0 {
			meta := tx.Bucket(metaBucket)
			if err := putInt(meta, sentSeqKey, int64(sentSeq)); err != nil {
				return err
			}
			if err := putInt(meta, sentAtKey, sentAt.UnixNano()); err != nil {
				return err
			}
		}
		return c.write(tx)
	})
}

// sentMark returns the highest sequence a forwarder recorded as sent, and
// when it recorded it.
func (s *store) sentMark() (seq uint64, at time.Time, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		seq = uint64(getInt(meta, sentSeqKey))
		at = time.Unix(0, getInt(meta, sentAtKey))
		return nil
	})
	return seq, at, err
}

// snapshot is the pending queue's state at one moment.
type snapshot struct {
	counters
	first  uint64    // sequence of the oldest pending message; 0 when none
	oldest time.Time // its enqueue time
	last   uint64    // the last sequence handed out
}

func (s *store) snapshot() (snapshot, error) {
	var sn snapshot
	err := s.view(func(tx *bolt.Tx) error {
		sn.counters = readCounters(tx)
		pending := tx.Bucket(pendingBucket)
		sn.last = pending.Sequence()
		k, v := pending.Cursor().First()
		if k == nil {
			return nil
		}
		sn.first = keySeq(k)
		sn.oldest, _ = recordEnqueued(v)
		return nil
	})
	return sn, err
}
