package outbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Salvage is what Open with WithSalvage did with a damaged file: it moved
// the file aside and kept, in a new file at the outbox's path, every record
// whose integrity it could verify. Outbox.Salvaged returns it, and Open
// logs it as a warning.
type Salvage struct {
	// MovedTo is where the damaged file now is, beside the new one:
	// <name>.corrupt-<UTC time>. It is never deleted by the outbox.
	MovedTo string
	// Cause is why the file was found damaged: the error Open returns
	// without WithSalvage (it matches ErrCorrupt).
	Cause error
	// Pending is how many pending messages were kept, in their order, each
	// with its id: they are forwarded as if nothing had happened.
	Pending int
	// DeadLetters is how many dead letters were kept.
	DeadLetters int
	// SetAside is how many pending records were found whose bytes failed
	// their check: they are among the dead letters, their bytes as found,
	// as the forwarder sets aside a damaged record (see DeadLetters).
	SetAside int
	// Lost is how many pending messages the damaged file counted that were
	// found neither intact nor damaged (they were on pages that could not
	// be read), or -1 when the file's count could not be read either. The
	// file set aside still holds whatever bytes of them survive.
	Lost int
}

// Salvaged reports what Open did with a damaged file, when it was opened
// WithSalvage and the file was damaged; ok is false otherwise.
func (ob *Outbox) Salvaged() (s Salvage, ok bool) {
	if ob.salvage == nil {
		return Salvage{}, false
	}
	return *ob.salvage, true
}

// salvaged is what salvage read from a damaged file.
type salvaged struct {
	origin      string
	legacyUntil uint64
	sequence    uint64 // the pending bucket's sequence
	sentSeq     []byte // the meta bucket's sent.seq and sent.at, as stored
	sentAt      []byte
	count       int64 // the pending count the meta bucket held; -1 unknown
	pending     []keyValue
	setAside    []keyValue // pending records that failed their check
	dead        []keyValue
}

type keyValue struct{ k, v []byte }

// salvageFile moves the damaged file at path aside and writes what can be
// verified of it to a new file at path. cause is why it was found damaged.
func salvageFile(path string, cause error) (*Salvage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := lockFile(f, lockTimeout); err != nil {
		return nil, fmt.Errorf("lock the damaged file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var best *salvaged
	// The pending count of the current meta page's tree, -1 when it cannot
	// be read: the tree of the meta page before it is one transaction
	// older, and may lack the last messages.
	count := int64(-1)
	for i, m := range boltMetas(f, info.Size()) {
		got := readSalvage(f, info.Size(), m)
		if best == nil || len(got.pending) > len(best.pending) {
			best = got
		}
		if i == 0 {
			count = got.count
		}
	}
	if best == nil {
		best = &salvaged{count: -1}
	}
	if best.origin == "" {
		best.origin = originOfRecords(best.pending)
	}

	tmp := path + ".salvage"
	os.Remove(tmp) // a salvage cut short before
	if err := writeSalvage(tmp, best); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("write the salvaged records to %s: %w", tmp, err)
	}
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("move the damaged file aside: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("move the salvaged file %s to %s: %w", tmp, path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the renames survive a power cut
		d.Close()
	}
	s := &Salvage{MovedTo: aside, Cause: cause, Pending: len(best.pending), DeadLetters: len(best.dead), SetAside: len(best.setAside), Lost: -1}
	if count >= 0 {
		s.Lost = max(0, int(count)-s.Pending-s.SetAside)
	}
	return s, nil
}

// readSalvage reads what it can of the outbox's buckets in the tree of
// meta page m, walking past damaged pages.
func readSalvage(f *os.File, size int64, m boltMeta) *salvaged {
	out := &salvaged{count: -1}
	r, err := newFileReader(f, size, m, true)
	if err != nil {
		// Truncated: read what lies inside the file.
		m.hwm = min(m.hwm, uint64(size)/uint64(m.pageSize))
		r = &fileReader{f: f, size: size, pageSize: int(m.pageSize), meta: m,
			free: map[uint64]bool{}, seen: map[uint64]bool{0: true, 1: true}, tolerant: true}
	}
	buckets := map[string]bucketRef{}
	_ = r.walkBucket(bucketRef{root: m.root}, 0, func(el element) error {
		if el.bucket {
			if b, err := parseBucket(el.value); err == nil {
				b.inline = bytes.Clone(b.inline)
				buckets[string(el.key)] = b
			}
		}
		return nil
	})
	if b, ok := buckets[string(metaBucket)]; ok {
		meta := map[string][]byte{}
		_ = r.walkBucket(b, 1, func(el element) error {
			meta[string(el.key)] = bytes.Clone(el.value)
			return nil
		})
		out.origin = string(meta[string(originKey)])
		if v := meta[string(countKey)]; len(v) == 8 {
			out.count = int64(keySeq(v))
		}
		if v := meta[string(legacyKey)]; len(v) == 8 {
			out.legacyUntil = keySeq(v)
		}
		out.sentSeq, out.sentAt = meta[string(sentSeqKey)], meta[string(sentAtKey)]
		if string(meta[string(formatKey)]) == legacyFormatMark {
			out.legacyUntil = buckets[string(pendingBucket)].sequence
		}
	}
	if b, ok := buckets[string(pendingBucket)]; ok {
		out.sequence = b.sequence
		_ = r.walkBucket(b, 1, func(el element) error {
			kv := keyValue{bytes.Clone(el.key), bytes.Clone(el.value)}
			if len(el.key) != 8 || el.bucket {
				return nil
			}
			if _, err := decodeRecord(keySeq(el.key), el.value, out.legacyUntil); err != nil {
				out.setAside = append(out.setAside, kv)
				return nil
			}
			out.pending = append(out.pending, kv)
			return nil
		})
	}
	if b, ok := buckets[string(deadBucket)]; ok {
		_ = r.walkBucket(b, 1, func(el element) error {
			if !el.bucket {
				out.dead = append(out.dead, keyValue{bytes.Clone(el.key), bytes.Clone(el.value)})
			}
			return nil
		})
	}
	return out
}

// originOfRecords returns the origin of the ids of verified records (an id
// is <origin>-<sequence>), for a file whose meta bucket was lost.
func originOfRecords(pending []keyValue) string {
	for _, kv := range pending {
		if r, err := decodeRecord(keySeq(kv.k), kv.v, 0); err == nil {
			if i := strings.LastIndexByte(r.id, '-'); i > 0 {
				return r.id[:i]
			}
		}
	}
	return ""
}

// writeSalvage writes what was salvaged to a new outbox file at path: the
// same origin (ids stay unique, and a resend of a message the stream holds
// is still a duplicate), the same sequences and sent mark, the pending
// records as they were stored, and the dead letters, with the records that
// failed their check among them.
func writeSalvage(path string, s *salvaged) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, PageSize: filePageSize})
	if err != nil {
		return err
	}
	st := &store{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := st.init(tx); err != nil {
			return err
		}
		meta := tx.Bucket(metaBucket)
		if s.origin != "" {
			if err := meta.Put(originKey, []byte(s.origin)); err != nil {
				return err
			}
			st.origin = s.origin
		}
		if err := putInt(meta, legacyKey, int64(s.legacyUntil)); err != nil {
			return err
		}
		for _, kv := range [][2][]byte{{sentSeqKey, s.sentSeq}, {sentAtKey, s.sentAt}} {
			if len(kv[1]) == 8 {
				if err := meta.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		pending := tx.Bucket(pendingBucket)
		var c counters
		last := s.sequence
		for _, kv := range s.pending {
			if err := pending.Put(kv.k, kv.v); err != nil {
				return err
			}
			c.count++
			c.bytes += int64(len(kv.v))
			last = max(last, keySeq(kv.k))
		}
		dead := tx.Bucket(deadBucket)
		now := time.Now()
		for _, kv := range s.setAside {
			last = max(last, keySeq(kv.k))
			cause := undecodableCause + ": found by the salvage of a damaged file"
			if err := dead.Put([]byte(st.msgID(keySeq(kv.k))), encodeDead(now, cause, kv.v)); err != nil {
				return err
			}
		}
		for _, kv := range s.dead {
			if err := dead.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		if err := pending.SetSequence(last); err != nil {
			return err
		}
		return c.write(tx)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
