package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// FuzzKVKeyRoundTrip checks key validation against a real bucket (the root
// package's FuzzValidateKey checks it against jetstream's own rule): a key
// ValidateKey accepts is stored and read back intact by a KVStore on an
// embedded server, and one it refuses is refused by the store before
// anything is sent, with an error naming the key.
func FuzzKVKeyRoundTrip(f *testing.F) {
	for _, k := range []string{"a", "services.processor", "a/b=c_d-e", "A.0.z", ".a", "a.", "a..b", "a b", "*", ">", "a.>", "ü", "", "a\x00"} {
		f.Add(k)
	}
	tc := natstest.NewTestClient(f, natstest.WithJetStream())
	setup, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket, err := tc.Client.CreateKeyValueBucket(setup, jetstream.KeyValueConfig{Bucket: "keys", History: 1})
	if err != nil {
		f.Fatal(err)
	}
	kv := tc.Client.NewKVStore(bucket)

	f.Fuzz(func(t *testing.T, key string) {
		if len(key) > 1024 {
			return // a key is a subject token: the server's control line bounds it
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		value := []byte("value of " + key)
		rev, err := kv.Put(ctx, key, value)
		if verr := natsclient.ValidateKey(key); verr != nil {
			if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, jetstream.ErrInvalidKey) ||
				!strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
				t.Fatalf("Put with the refused key %q = %v, want ErrInvalidArgument and ErrInvalidKey naming the key", key, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Put with the accepted key %q: %v", key, err)
		}
		entry, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q) after Put: %v", key, err)
		}
		if entry.Key() != key || !bytes.Equal(entry.Value(), value) || entry.Revision() != rev {
			t.Fatalf("Get(%q) = key %q, value %q, revision %d; want what Put stored at revision %d",
				key, entry.Key(), entry.Value(), entry.Revision(), rev)
		}
	})
}

// FuzzUpdateJSONStoredBytes stores arbitrary bytes under a key of a real
// bucket and runs KVStore.UpdateJSON on them. When the bytes are a JSON
// object (encoding/json decodes them into a map), or JSON null (read as an
// empty object), the update succeeds, calls fn once and stores the same
// object with fn's change; otherwise it fails,
// never calls fn, and the stored bytes and revision are unchanged. Nothing
// panics either way.
func FuzzUpdateJSONStoredBytes(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"n":1}`, ` {"a":{"b":[1,2,{"c":null}]},"s":"\u00e9"} `, `[]`, `null`, `"s"`, `42`, ``,
		`{"a":`, `{"a":1} x`, `{"a":1e400}`, "\xef\xbb\xbf{}", `{"a":1,"a":2}`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s))
	}
	tc := natstest.NewTestClient(f, natstest.WithJetStream())
	setup, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket, err := tc.Client.CreateKeyValueBucket(setup, jetstream.KeyValueConfig{Bucket: "fuzz", History: 1})
	if err != nil {
		f.Fatal(err)
	}
	kv := tc.Client.NewKVStore(bucket)

	f.Fuzz(func(t *testing.T, stored []byte) {
		if len(stored) > 64<<10 {
			return // beyond the server's payload limits, not UpdateJSON's concern
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rev, err := kv.Put(ctx, "doc", stored)
		if err != nil {
			t.Fatalf("Put(%q): %v", stored, err)
		}
		var decoded any
		object, isObject := map[string]any(nil), false
		if json.Unmarshal(stored, &decoded) == nil {
			object, isObject = decoded.(map[string]any)
			if decoded == nil { // JSON null: an empty object
				object, isObject = map[string]any{}, true
			}
		}

		calls := 0
		err = kv.UpdateJSON(ctx, "doc", func(obj map[string]any) error {
			calls++
			obj["_fuzz"] = float64(calls)
			return nil
		})
		entry, gerr := kv.Get(ctx, "doc")
		if gerr != nil {
			t.Fatalf("Get after UpdateJSON: %v", gerr)
		}
		if !isObject {
			if err == nil {
				t.Fatalf("UpdateJSON on %q, not a JSON object, succeeded and stored %q", stored, entry.Value())
			}
			if calls != 0 {
				t.Fatalf("UpdateJSON on %q called fn %d times", stored, calls)
			}
			if string(entry.Value()) != string(stored) || entry.Revision() != rev {
				t.Fatalf("UpdateJSON on %q changed the entry to %q (revision %d, was %d)", stored, entry.Value(), entry.Revision(), rev)
			}
			return
		}
		if err != nil {
			t.Fatalf("UpdateJSON on the object %q: %v", stored, err)
		}
		if calls != 1 {
			t.Fatalf("UpdateJSON on %q with no other writer called fn %d times", stored, calls)
		}
		if entry.Revision() <= rev {
			t.Fatalf("revision %d after the update, %d before", entry.Revision(), rev)
		}
		var after map[string]any
		if err := json.Unmarshal(entry.Value(), &after); err != nil {
			t.Fatalf("UpdateJSON stored %q, not JSON: %v", entry.Value(), err)
		}
		object["_fuzz"] = float64(1)
		if !reflect.DeepEqual(after, object) {
			t.Fatalf("UpdateJSON on %q stored %q, want the same object with _fuzz set", stored, entry.Value())
		}
	})
}
