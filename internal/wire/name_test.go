package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/c360/natsclient/internal/errs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		bucket, key string
		ok          bool
	}{
		{"", "a", true},
		{"", "a.b/c_d-e=f", true},
		{"", "", false},
		{"", ".a", false},
		{"", "a.", false},
		{"", "a..b", false},
		{"", "a b", false},
		{"", "a*", false},
		{"", strings.Repeat("k", MaxKeyLen("b")), true},
		{"", strings.Repeat("k", MaxKeyLen("b")+1), false},
		{"long-bucket", strings.Repeat("k", MaxKeyLen("long-bucket")), true},
		{"long-bucket", strings.Repeat("k", MaxKeyLen("long-bucket")+1), false},
	} {
		name := tc.key
		if len(name) > 20 {
			name = name[:10] + "…"
		}
		t.Run(tc.bucket+"/"+name, func(t *testing.T) {
			err := ValidateKey(tc.bucket, tc.key)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateKey(%q, %d bytes) = %v, want ok %t", tc.bucket, len(tc.key), err, tc.ok)
			}
			if err != nil && (!errors.Is(err, errs.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey)) {
				t.Fatalf("ValidateKey's error %v does not match ErrInvalidArgument and jetstream.ErrInvalidKey", err)
			}
		})
	}
}

func TestValidateNames(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bucketOK bool
		streamOK bool
	}{
		{"orders", true, true},
		{"ORDERS_eu-1", true, true},
		{"", false, false},
		{"a.b", false, false},
		{"a b", false, false},
		{"a*", false, false},
		{"a/b", false, false},
		{"a=b", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateBucketName(tc.name); (err == nil) != tc.bucketOK {
				t.Errorf("ValidateBucketName(%q) = %v, want ok %t", tc.name, err, tc.bucketOK)
			} else if err != nil && !errors.Is(err, jetstream.ErrInvalidBucketName) {
				t.Errorf("ValidateBucketName's error %v does not match jetstream.ErrInvalidBucketName", err)
			}
			if err := ValidateStreamName("stream", tc.name); (err == nil) != tc.streamOK {
				t.Errorf("ValidateStreamName(%q) = %v, want ok %t", tc.name, err, tc.streamOK)
			} else if err != nil && !errors.Is(err, errs.ErrInvalidArgument) {
				t.Errorf("ValidateStreamName's error %v does not match ErrInvalidArgument", err)
			}
		})
	}
}

// HeaderLen counts the header block byte for byte as nats.go encodes it.
func TestHeaderLen(t *testing.T) {
	for _, tc := range []struct {
		h     nats.Header
		block string
	}{
		{nil, ""},
		{nats.Header{}, ""},
		{nats.Header{"Nats-Msg-Id": {"abc"}}, "NATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n"},
		{nats.Header{"A": {"1", "22"}}, "NATS/1.0\r\nA: 1\r\nA: 22\r\n\r\n"},
	} {
		if got := HeaderLen(tc.h); got != len(tc.block) {
			t.Errorf("HeaderLen(%v) = %d, want %d (%q)", tc.h, got, len(tc.block), tc.block)
		}
	}
}

func TestNewMsgIDIsShortAndUnique(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewMsgID()
		if seen[id] || len(id) > 12+6 {
			t.Fatalf("message ID %q repeated or too long", id)
		}
		seen[id] = true
	}
}
