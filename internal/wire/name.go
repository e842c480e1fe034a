package wire

import (
	"fmt"
	"unicode/utf8"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go/jetstream"
)

// keyLineOverhead is what the longest protocol line sent for one key holds
// besides the key and the bucket's name, which it holds twice. That line is
// a watch's consumer creation, longer than a put's or a direct get's:
//
//	HPUB $JS.API.CONSUMER.CREATE.KV_<bucket>.<name>.$KV.<bucket>.<key> <reply> <header size> <size>\r\n
//
// with a consumer name of 22 characters, a reply subject of up to 64 (nats.go
// uses 38) and up to ten digits for each size.
const keyLineOverhead = len("HPUB $JS.API.CONSUMER.CREATE.KV_") + len(".") + 22 + len(".$KV.") + len(".") +
	len(" ") + 64 + len(" ") + 10 + len(" ") + 10 + len("\r\n")

// MaxKeyLen is the longest key that bucket can hold: one whose requests fit
// the server's control line.
func MaxKeyLen(bucket string) int { return MaxControlLine - keyLineOverhead - 2*len(bucket) }

// TooLong refuses a key or watch pattern too long for bucket ("": any
// bucket) with an error naming the limit.
func TooLong(bucket, what, key string) error {
	limit, in := MaxKeyLen(bucket), "any bucket"
	if bucket == "" {
		limit = MaxKeyLen("b")
	}
	if len(key) <= limit {
		return nil
	}
	if bucket != "" {
		in = fmt.Sprintf("bucket %q", bucket)
	}
	return fmt.Errorf("%w: %s %q… of %d bytes: longer than the %d bytes it may have in %s, "+
		"so that the requests on it fit the server's control-line limit of %d bytes: %w",
		errs.ErrInvalidArgument, what, namedPrefix(key), len(key), limit, in, MaxControlLine, jetstream.ErrInvalidKey)
}

// namedPrefix is what an overlong key's error quotes of it: its first 40
// bytes, cut at a character boundary, enough to recognise it without a 4 KB
// line in a log.
func namedPrefix(key string) string {
	cut := min(len(key), 40)
	for cut > 0 && cut < len(key) && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return key[:cut]
}

// ValidateKey reports whether key can name a Key-Value entry in bucket ("":
// a bucket of the shortest name; see natsclient.ValidateKey).
func ValidateKey(bucket, key string) error {
	if err := TooLong(bucket, "key", key); err != nil {
		return err
	}
	why := ""
	switch {
	case key == "":
		why = "empty key"
	case key[0] == '.':
		why = "starts with '.'"
	case key[len(key)-1] == '.':
		why = "ends with '.'"
	default:
		for i := 0; i < len(key); i++ {
			b := key[i]
			if b == '.' && key[i+1] == '.' { // the last byte is not '.'
				why = fmt.Sprintf("empty token (\"..\") at byte %d", i)
				break
			}
			if !keyByte(b) {
				why = fmt.Sprintf("character %q at byte %d is not allowed (letters, digits and - / _ = . are)", b, i)
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: key %q: %s: %w", errs.ErrInvalidArgument, key, why, jetstream.ErrInvalidKey)
}

// keyByte reports whether b may appear in a key.
func keyByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '/' || b == '_' || b == '=' || b == '.'
}

// ValidateBucketName reports whether name can name a Key-Value bucket (see
// natsclient.ValidateBucketName).
func ValidateBucketName(name string) error {
	why := ""
	if name == "" {
		why = "empty bucket name"
	}
	for i := 0; i < len(name) && why == ""; i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			why = fmt.Sprintf("character %q at byte %d is not allowed (letters, digits, - and _ are)", b, i)
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: bucket %q: %s: %w", errs.ErrInvalidArgument, name, why, jetstream.ErrInvalidBucketName)
}

// ValidateStreamName rejects what the server would refuse as the name of a
// stream, a consumer or a JetStream domain (what): an empty name, or one
// holding whitespace, '.', '*', '>' or a path separator.
func ValidateStreamName(what, name string) error {
	if name == "" {
		return errs.InvalidArgument("empty %s name", what)
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case b <= ' ' || b == 0x7f:
			return errs.InvalidArgument("%s name %q: whitespace or control character at byte %d", what, name, i)
		case b == '.' || b == '*' || b == '>' || b == '/' || b == '\\':
			return errs.InvalidArgument("%s name %q: %q at byte %d is not allowed", what, name, b, i)
		}
	}
	return nil
}
