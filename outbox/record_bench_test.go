package outbox

import (
	"testing"
	"time"
)

// BenchmarkRecordDecode measures reading one stored record of a 200-byte
// payload as the forwarder does, its checksum checked (v2), and, for
// comparison, the same fields without one (v1).
func BenchmarkRecordDecode(b *testing.B) {
	r := &record{seq: 7, id: "0123456789abcdef-7", subject: "out.bench", data: make([]byte, 200), enqueued: time.Now()}
	v2 := r.encode()
	v1 := append([]byte{recordV1}, v2[recordV2Header:]...)
	for _, c := range []struct {
		name   string
		stored []byte
	}{{"checksummed", v2}, {"v1", v1}} {
		b.Run(c.name, func(b *testing.B) {
			var arena pageArena
			var out record
			for b.Loop() {
				if err := decodeRecordInto(&out, 7, c.stored, &arena, 7); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
