package natsclient_test

import (
	"bytes"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestKVUpdateJSONReadsNullAsAnEmptyObject: every way a KVStore stores JSON
// null (UpdateJSONAs whose fn leaves a nil map, PutJSON of nil or of a nil
// pointer), and a null written by another client, leaves a key UpdateJSON
// can still update: it reads null as an empty object, as a missing key.
func TestKVUpdateJSONReadsNullAsAnEmptyObject(t *testing.T) {
	tc := natstest.NewTestClient(t, natstest.WithKV())
	ctx := natstest.Context(t, waitTimeout)
	bucket, kv := newBucket(t, tc, jetstream.KeyValueConfig{Bucket: "nulls", History: 5})
	type config struct{ Workers int }
	cases := map[string]func(t *testing.T, key string){
		"UpdateJSONAs leaves a nil map": func(t *testing.T, key string) {
			if _, err := kv.PutJSON(ctx, key, map[string]any{"old": true}); err != nil {
				t.Fatal(err)
			}
			if _, err := natsclient.UpdateJSONAs(ctx, kv, key, func(v *map[string]any) error { *v = nil; return nil }); err != nil {
				t.Fatalf("UpdateJSONAs setting nil: %v", err)
			}
		},
		"PutJSON(nil)": func(t *testing.T, key string) {
			if _, err := kv.PutJSON(ctx, key, nil); err != nil {
				t.Fatal(err)
			}
		},
		"PutJSON of a nil pointer": func(t *testing.T, key string) {
			if _, err := kv.PutJSON(ctx, key, (*config)(nil)); err != nil {
				t.Fatal(err)
			}
		},
		"another client's null, with spaces": func(t *testing.T, key string) {
			if _, err := bucket.Put(ctx, key, []byte(" null \n")); err != nil {
				t.Fatal(err)
			}
		},
	}
	i := 0
	for name, storeNull := range cases {
		i++
		key := "k" + string(rune('0'+i))
		t.Run(name, func(t *testing.T) {
			storeNull(t, key)
			if _, v := revisionOf(t, bucket, key); !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
				t.Fatalf("stored %q, want null", v)
			}
			calls := 0
			err := kv.UpdateJSON(ctx, key, func(m map[string]any) error {
				calls++
				if m == nil || len(m) != 0 {
					t.Errorf("fn got %#v, want an empty, writable object", m)
				}
				m["workers"] = 3
				return nil
			})
			if err != nil || calls != 1 {
				t.Fatalf("UpdateJSON on null = %v after %d calls of fn", err, calls)
			}
			if _, v := revisionOf(t, bucket, key); string(v) != `{"workers":3}` {
				t.Fatalf("stored %s, want {\"workers\":3}", v)
			}
			var got config
			if _, err := kv.GetJSON(ctx, key, &got); err != nil || got.Workers != 3 {
				t.Fatalf("GetJSON = %+v, %v", got, err)
			}
		})
	}
}
