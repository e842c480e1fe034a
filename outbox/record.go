package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// recordVersion is the first byte of every stored record, so that a later
// format can tell old records apart.
const recordVersion = 1

var errCorruptRecord = errors.New("corrupt record")

// encode returns the record's stored form: a version byte, the enqueue time,
// the id, the subject and the headers, each length-prefixed, then the payload
// to the end.
func (r *record) encode() []byte {
	n := 1 + 8 + 3*binary.MaxVarintLen64 + len(r.id) + len(r.subject) + len(r.data)
	for k, vs := range r.header {
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
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
	return append(b, r.data...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeRecord parses a stored record. It copies what it keeps, because the
// bytes bbolt hands out are valid only inside their transaction.
func decodeRecord(seq uint64, b []byte) (*record, error) {
	d := decoder{b: b}
	if v := d.byte(); v != recordVersion {
		return nil, fmt.Errorf("%w: version %d at sequence %d", errCorruptRecord, v, seq)
	}
	r := &record{seq: seq}
	r.enqueued = time.Unix(0, int64(d.uint64()))
	r.id = d.string()
	r.subject = d.string()
	if nh := d.uvarint(); nh > 0 && d.err == nil {
		if nh > uint64(len(d.b)) {
			return nil, fmt.Errorf("%w: %d headers at sequence %d", errCorruptRecord, nh, seq)
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
		return nil, fmt.Errorf("%w at sequence %d", d.err, seq)
	}
	r.data = append([]byte(nil), d.b...)
	return r, nil
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

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorruptRecord
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
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
