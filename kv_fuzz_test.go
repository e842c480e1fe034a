package natsclient_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/c360/natsclient"
	"github.com/nats-io/nats.go/jetstream"
)

// jetstreamKeyRe and jetstreamBucketRe are nats.go's own rules for keys and
// bucket names (jetstream/kv.go), copied as the reference ValidateKey and
// ValidateBucketName must agree with.
var (
	jetstreamKeyRe    = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)
	jetstreamBucketRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

func referenceKeyValid(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, "..") {
		return false
	}
	return jetstreamKeyRe.MatchString(key)
}

// FuzzValidateKey checks that ValidateKey accepts exactly the keys jetstream
// accepts, that every accepted key makes a valid subject under a bucket, and
// that every refusal matches both sentinels and names the key.
func FuzzValidateKey(f *testing.F) {
	for _, k := range []string{"a", "services.processor", "a/b=c_d-e", ".a", "a.", "a..b", "a b", "*", ">", "ü", "", "a\x00"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := natsclient.ValidateKey(key)
		if want := referenceKeyValid(key); (err == nil) != want {
			t.Fatalf("ValidateKey(%q) = %v, jetstream's rule says valid=%v", key, err, want)
		}
		if err == nil {
			if serr := natsclient.ValidateSubject("$KV.bucket." + key); serr != nil {
				t.Fatalf("accepted key %q makes an invalid subject: %v", key, serr)
			}
			return
		}
		if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey) {
			t.Fatalf("ValidateKey(%q) = %v, want ErrInvalidArgument and jetstream.ErrInvalidKey", key, err)
		}
		// An overlong key is named by its first 40 bytes, cut at a
		// character boundary.
		cut := min(len(key), 40)
		for cut > 0 && cut < len(key) && !utf8.RuneStart(key[cut]) {
			cut--
		}
		named := fmt.Sprintf("%q", key[:cut])
		if !strings.Contains(err.Error(), strings.TrimSuffix(named, `"`)) {
			t.Fatalf("error %q does not name the key", err)
		}
	})
}

// FuzzValidateBucketName checks ValidateBucketName against jetstream's rule.
func FuzzValidateBucketName(f *testing.F) {
	for _, b := range []string{"config", "a-b_c", "", "a.b", "a b", "KV_x", "a/b"} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := natsclient.ValidateBucketName(name)
		if want := jetstreamBucketRe.MatchString(name); (err == nil) != want {
			t.Fatalf("ValidateBucketName(%q) = %v, jetstream's rule says valid=%v", name, err, want)
		}
		if err != nil && (!errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidBucketName)) {
			t.Fatalf("ValidateBucketName(%q) = %v, want both sentinels", name, err)
		}
	})
}
