package wire

import (
	crand "crypto/rand"
	"encoding/base64"
	"strconv"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// HeaderLen is how many bytes h adds to a message as nats.go encodes it:
// "NATS/1.0\r\n", a "Name: value\r\n" line per value, and "\r\n"; none
// when h is empty. The server counts it toward max_payload and a bucket's
// MaxValueSize, with the data.
func HeaderLen(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// msgIDPrefix makes message IDs unique across processes, and msgIDSeq
// within this one: a message ID costs an atomic add, not a read of the
// system's random source per write. The server counts headers toward a
// bucket's MaxValueSize, so an ID is as short as uniqueness allows: 72
// random bits drawn once per process (12 characters), then the sequence in
// base 36 (1 character for the first 35 IDs, 6 up to two billion).
var (
	msgIDPrefix = randomPrefix()
	msgIDSeq    atomic.Uint64
)

// randomPrefix draws msgIDPrefix: 9 random bytes, 12 characters of base64.
func randomPrefix() string {
	var b [9]byte
	_, _ = crand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewMsgID returns a new message ID for the Nats-Msg-Id header.
func NewMsgID() string { return msgIDPrefix + strconv.FormatUint(msgIDSeq.Add(1), 36) }
