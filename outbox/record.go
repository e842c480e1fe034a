package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/nats-io/nats.go"
)

// record is one message as the outbox stores it.
type record struct {
	seq      uint64 // key in the pending bucket: the order of the queue
	id       string // Nats-Msg-Id; kept when a dead letter is requeued
	subject  string
	header   nats.Header
	data     []byte
	enqueued time.Time
	// corrupt is set, and the fields above but seq and id are empty, when
	// the stored bytes could not be decoded.
	corrupt error
}

// The first byte of every stored record is its format's version, so that a
// later format can tell old records apart.
const (
	// recordV1 is the format without a checksum, written before records
	// carried one. It is read only where the file says such records may be
	// (store.legacyUntil): a damaged byte cannot turn a checked record into
	// an unchecked one.
	recordV1 = 1
	// recordV2 adds a CRC-32C of everything after it, and the record's own
	// sequence, so that damage anywhere in its bytes, or in its key, is
	// found on read: bbolt checks only its meta pages.
	recordV2 = 2
)

// recordV2Header is what a v2 record holds before the v1 fields: the
// version, the checksum, and the sequence.
const recordV2Header = 1 + 4 + 8

// castagnoli is CRC-32C, computed by the CPU's instruction where it has one.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errCorruptRecord = errors.New("corrupt record")

// encode returns the record's stored form (recordV2): the version byte, the
// CRC-32C of the rest, the sequence, the enqueue time, the id, the subject
// and the headers, each length-prefixed, then the payload to the end.
func (r *record) encode() []byte {
	n := recordV2Header + 8 + 3*binary.MaxVarintLen64 + len(r.id) + len(r.subject) + len(r.data)
	for k, vs := range r.header {
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, recordV2Header-8, n)
	b[0] = recordV2
	b = binary.BigEndian.AppendUint64(b, r.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.enqueued.UnixNano()))
	b = appendString(b, r.id)
	b = appendString(b, r.subject)
	b = binary.AppendUvarint(b, uint64(len(r.header)))
	for k, vs := range r.header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = append(b, r.data...)
	binary.BigEndian.PutUint32(b[1:5], crc32.Checksum(b[5:], castagnoli))
	return b
}

// recordEnqueued returns the enqueue time of a stored record, read without
// decoding it (nor checking it: Stats' Oldest only).
func recordEnqueued(v []byte) (time.Time, bool) {
	switch {
	case len(v) >= recordV2Header+8 && v[0] == recordV2:
		return time.Unix(0, int64(binary.BigEndian.Uint64(v[recordV2Header:]))), true
	case len(v) >= 9 && v[0] == recordV1:
		return time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))), true
	}
	return time.Time{}, false
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeRecord parses a stored record. It copies what it keeps, because the
// bytes bbolt hands out are valid only inside their transaction.
func decodeRecord(seq uint64, b []byte, legacyUntil uint64) (*record, error) {
	r := &record{}
	return r, decodeRecordInto(r, seq, b, nil, legacyUntil)
}

// pageArena holds what the records of one page read from the file share,
// so that forwarding a message does not cost an allocation per field: the
// payloads are copied into chunks of a shared buffer, and a subject equal to
// the previous record's is the same string. A chunk is freed when the last
// record in it has left the forwarder's window.
type pageArena struct {
	chunk   []byte
	subject string
}

// arenaChunk is the size of an arena's buffers: a few dozen small payloads
// share one; a payload larger than this has its own.
const arenaChunk = 32 << 10

// bytes returns a copy of b. A copy never moves: a chunk is replaced when
// full, never grown in place.
func (a *pageArena) bytes(b []byte) []byte {
	if len(b) > cap(a.chunk)-len(a.chunk) {
		if len(b) > arenaChunk/4 {
			return append([]byte(nil), b...)
		}
		a.chunk = make([]byte, 0, arenaChunk)
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

// string returns b as a string, the previous one again when it is equal.
func (a *pageArena) string(b []byte) string {
	if string(b) != a.subject { // no allocation: the compiler compares in place
		a.subject = string(b)
	}
	return a.subject
}

// decodeRecordInto parses the record stored at seq into r, taking the
// payload's copy and the subject from arena when it is not nil. seq is 0
// for a record whose key is not known (a dead letter's). A v2 record must
// pass its checksum and hold seq; a v1 record, which has no checksum, is
// read only at a sequence up to legacyUntil (or, with seq 0, in a file that
// has any: legacyUntil > 0).
func decodeRecordInto(r *record, seq uint64, b []byte, arena *pageArena, legacyUntil uint64) error {
	d := decoder{b: b}
	switch v := d.byte(); {
	case v == recordV2:
		if len(b) < recordV2Header {
			return fmt.Errorf("%w: %d bytes at sequence %d", errCorruptRecord, len(b), seq)
		}
		if sum := crc32.Checksum(b[5:], castagnoli); sum != binary.BigEndian.Uint32(b[1:5]) {
			return fmt.Errorf("%w: checksum mismatch at sequence %d", errCorruptRecord, seq)
		}
		own := binary.BigEndian.Uint64(b[5:recordV2Header])
		if seq != 0 && own != seq {
			return fmt.Errorf("%w: record of sequence %d stored at sequence %d", errCorruptRecord, own, seq)
		}
		d.b = b[recordV2Header:]
		seq = own
	case v == recordV1 && legacyUntil > 0 && seq <= legacyUntil:
	case v == recordV1:
		return fmt.Errorf("%w: a record without a checksum at sequence %d, in a file written with checksums from sequence %d", errCorruptRecord, seq, legacyUntil+1)
	default:
		return fmt.Errorf("%w: version %d at sequence %d", errCorruptRecord, v, seq)
	}
	r.seq = seq
	r.enqueued = time.Unix(0, int64(d.uint64()))
	r.id = d.string()
	if arena != nil {
		r.subject = arena.string(d.field())
	} else {
		r.subject = d.string()
	}
	if nh := d.uvarint(); nh > 0 && d.err == nil {
		if nh > uint64(len(d.b)) {
			return fmt.Errorf("%w: %d headers at sequence %d", errCorruptRecord, nh, seq)
		}
		r.header = make(nats.Header, nh)
		for range nh {
			k := d.string()
			nv := d.uvarint()
			if nv > uint64(len(d.b)) {
				d.err = errCorruptRecord
				break
			}
			vs := make([]string, 0, nv)
			for range nv {
				vs = append(vs, d.string())
			}
			r.header[k] = vs
		}
	}
	if d.err != nil {
		return fmt.Errorf("%w at sequence %d", d.err, seq)
	}
	if arena != nil {
		r.data = arena.bytes(d.b)
	} else {
		r.data = append([]byte(nil), d.b...)
	}
	return nil
}

// decoder reads the fields of a record; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = errCorruptRecord
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.err = errCorruptRecord
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorruptRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.field()) }

// field reads a length-prefixed field; its bytes are the decoder's, not a
// copy.
func (d *decoder) field() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorruptRecord
		return nil
	}
	f := d.b[:n]
	d.b = d.b[n:]
	return f
}

// deadLetter's stored form: the time, the error text, then the record.
func encodeDead(at time.Time, cause string, rec []byte) []byte {
	b := make([]byte, 0, 8+binary.MaxVarintLen64+len(cause)+len(rec))
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = appendString(b, cause)
	return append(b, rec...)
}

func decodeDead(b []byte) (at time.Time, cause string, rec []byte, err error) {
	d := decoder{b: b}
	at = time.Unix(0, int64(d.uint64()))
	cause = d.string()
	if d.err != nil {
		return time.Time{}, "", nil, d.err
	}
	return at, cause, d.b, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func keySeq(k []byte) uint64 { return binary.BigEndian.Uint64(k) }
