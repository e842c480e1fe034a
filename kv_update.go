package natsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/c360/natsclient/internal/backoff"
	"github.com/c360/natsclient/internal/errs"
)

// Updates: read a key, change what it holds, and write the result back on
// the condition that nobody wrote the key meanwhile (a compare-and-swap);
// when somebody did, do it all again. UpdateWithRetry, UpdateJSON and
// UpdateJSONAs differ only in how they change the value: each runs update,
// whose loop, retryOnConflict, is the only retry in this file. The write
// itself, applied exactly once, is kv_write.go's.

// UpdateWithRetry reads key, calls fn with its current value, and writes
// what fn returns if the key has not changed since it was read (a
// compare-and-swap), retrying the whole read-modify-write when another
// writer got there first, up to KVOptions.MaxRetries times with jittered
// backoff, within KVOptions.Timeout and ctx. It returns the new revision.
//
// current is nil when the key does not exist or was deleted (the write is
// then a create), and a non-nil slice otherwise, empty for an empty value.
// fn may be called several times, so it must compute from current alone. An
// error from fn is returned as it is, at once, with nothing written; a panic
// in fn is not recovered, and nothing is written.
//
// When the retries run out the error matches ErrKVMaxRetriesExceeded and
// ErrKVRevisionMismatch and says how many attempts were made. A write whose
// acknowledgement was lost is resolved as KVStore's "Exactly once" describes;
// fn is never called again for a write that may have been stored. When ctx
// or the Timeout ends before the write is sent, while fn runs for instance,
// nothing is stored and the error matches ctx's error, not
// ErrKVUnknownOutcome.
func (kv *KVStore) UpdateWithRetry(ctx context.Context, key string, fn func(current []byte) ([]byte, error)) (uint64, error) {
	if fn == nil {
		return 0, errs.InvalidArgument("kv update %s/%s: nil update function", kv.bucket.name, key)
	}
	return kv.update(ctx, "update", key, func(cur []byte, _ uint64) ([]byte, error) { return fn(cur) })
}

// UpdateJSON updates the JSON object stored under key with fn, as
// UpdateWithRetry does: fn gets the object decoded into a map (empty when the
// key does not exist or was deleted), changes it in place, and the map is
// encoded and written if the key did not change meanwhile, else fn is called
// again on the fresh value. Numbers decode as float64, as encoding/json does;
// for typed values use UpdateJSONAs.
//
// A stored JSON null reads as an empty object too: it holds nothing the
// write could lose, and it is what PutJSON(nil), or UpdateJSONAs with a fn
// that leaves a nil map or pointer, stores. Any other stored value that is
// not a JSON object (an array, a string, a number, bytes that are not JSON)
// is an error naming the key and the decoding problem, returned at once: fn
// is not called and the value is left as it is.
func (kv *KVStore) UpdateJSON(ctx context.Context, key string, fn func(map[string]any) error) error {
	if fn == nil {
		return errs.InvalidArgument("kv update json %s/%s: nil update function", kv.bucket.name, key)
	}
	_, err := kv.update(ctx, "update json", key, func(cur []byte, rev uint64) ([]byte, error) {
		obj := map[string]any{}
		if cur != nil {
			if err := decodeObject(cur, &obj); err != nil {
				return nil, kv.decodeError(key, rev, err)
			}
		}
		if err := fn(obj); err != nil {
			return nil, err
		}
		return json.Marshal(obj)
	})
	return err
}

// UpdateJSONAs is UpdateJSON for a value kept as a T rather than a map: fn
// gets a pointer to the stored value decoded into a T (the zero T when the
// key does not exist or was deleted) and changes it; the T is encoded as JSON
// and written with compare-and-swap, retrying on conflict. It returns the new
// revision. A stored value that does not decode into a T is an error naming
// the key, returned before fn is called.
//
// Members of a stored JSON object that T does not declare are kept as they
// are, after T's own: two services of different versions sharing a key
// each change only the fields they know. A member T declares and fn left
// out (a zero value under omitempty) is dropped, as encoding T would drop
// it; which members T declares is decided as encoding/json decides it,
// letter case aside.
//
// A fn that leaves a nil value (a nil map, pointer or slice) stores JSON
// null, as PutJSON(nil) does; UpdateJSON reads that back as an empty object,
// and UpdateJSONAs as the zero T.
func UpdateJSONAs[T any](ctx context.Context, kv *KVStore, key string, fn func(*T) error) (uint64, error) {
	if kv == nil {
		return 0, errs.InvalidArgument("UpdateJSONAs: nil *KVStore")
	}
	if fn == nil {
		return 0, errs.InvalidArgument("kv update json %s/%s: nil update function", kv.bucket.name, key)
	}
	return kv.update(ctx, "update json", key, func(cur []byte, rev uint64) ([]byte, error) {
		var v T
		if cur != nil {
			if err := json.Unmarshal(cur, &v); err != nil {
				return nil, kv.decodeError(key, rev, err)
			}
		}
		if err := fn(&v); err != nil {
			return nil, err
		}
		out, err := json.Marshal(&v)
		if err != nil || cur == nil {
			return out, err
		}
		return keepUnknownMembers[T](cur, out), nil
	})
}

// update is the read-modify-write behind the Update* methods: it starts the
// call's budget and its span, and runs retryOnConflict. next gets the
// current value (nil: no key) and its revision; its error ends the call at
// once and is returned as it is.
func (kv *KVStore) update(ctx context.Context, op, key string, next func(cur []byte, rev uint64) ([]byte, error)) (uint64, error) {
	bg, err := kv.begin(ctx, op, key)
	if err != nil {
		return 0, err
	}
	defer bg.end()
	w := kv.c.tel.kvWrite(ctx, op, kv.bucket.name, key)
	rev, err := kv.retryOnConflict(&bg, w, op, key, next)
	return w.end(rev, err)
}

// retryOnConflict reads the key (load, kv_read.go), calls next on what it
// holds, and writes the result on the condition that the key is still at the
// revision read (write, kv_write.go). When another writer's write got there
// first, it does it all again from the read, after a wait (backoff), up to
// KVOptions.MaxRetries times. Nothing else is tried again here: a write
// whose outcome is unknown is never followed by a new call of next.
func (kv *KVStore) retryOnConflict(bg *budget, w *kvWrite, op, key string, next func(cur []byte, rev uint64) ([]byte, error)) (uint64, error) {
	ctx := bg.context()
	for attempt := 1; ; attempt++ {
		cur, err := kv.load(ctx, op, key)
		if err != nil {
			return 0, err
		}
		value, err := next(cur.value, cur.rev)
		if err != nil {
			return 0, err
		}
		rev, err := kv.write(bg, writeReq{op: op, key: key, value: value, cas: true, create: !cur.exists, expected: cur.rev})
		if err == nil {
			return rev, nil
		}
		if !IsKVConflictError(err) || errors.Is(err, ErrKVUnknownOutcome) {
			return 0, err
		}
		if attempt > kv.opts.MaxRetries {
			return 0, kv.maxRetriesError(op, key, attempt, err)
		}
		w.conflict(attempt)
		if werr := backoff.Sleep(ctx, backoff.Delay(kv.opts.RetryDelay, attempt)); werr != nil {
			return 0, &kvError{op: op, bucket: kv.bucket.name, key: key,
				err: fmt.Errorf("stopped after %d attempts: %w; the last attempt: %w", attempt, werr, err)}
		}
	}
}

// keepUnknownMembers returns out, a T encoded, with the members of the
// stored object cur that T does not declare appended unchanged. When either
// is not a JSON object there is nothing to keep.
func keepUnknownMembers[T any](cur, out []byte) []byte {
	var stored, written map[string]json.RawMessage
	if json.Unmarshal(cur, &stored) != nil || len(stored) == 0 || json.Unmarshal(out, &written) != nil || written == nil {
		return out
	}
	var extra []string
	for name, raw := range stored {
		if _, ok := written[name]; !ok && !declares[T](name, raw) {
			extra = append(extra, name)
		}
	}
	if len(extra) == 0 {
		return out
	}
	slices.Sort(extra) // the same bytes for the same input
	merged := bytes.TrimRight(out, " \t\r\n")
	merged = merged[:len(merged)-1] // the closing '}'
	for i, name := range extra {
		if i > 0 || len(written) > 0 {
			merged = append(merged, ',')
		}
		quoted, _ := json.Marshal(name) // a string always encodes
		merged = append(append(append(merged, quoted...), ':'), stored[name]...)
	}
	return append(merged, '}')
}

// declares reports whether T has a field the member name decodes into:
// decoding the member alone into a zero T changes it. A member with a zero
// value changes nothing and counts as undeclared, so it is kept, which reads
// the same as leaving it out.
func declares[T any](name string, raw json.RawMessage) bool {
	doc, err := json.Marshal(map[string]json.RawMessage{name: raw})
	if err != nil {
		return false
	}
	var probe T
	if err := json.Unmarshal(doc, &probe); err != nil {
		return true // a field of T, of another type: T's value stands
	}
	return !reflect.ValueOf(&probe).Elem().IsZero()
}

// decodeObject decodes a JSON object into obj, and refuses anything else
// (an array, a string, an empty value) rather than let it pass as an empty
// object that the write would then overwrite. JSON null leaves obj as it is
// (empty): there is nothing in it to overwrite.
func decodeObject(data []byte, obj *map[string]any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return errors.New("empty value, not a JSON object")
	}
	if string(bytes.TrimRight(trimmed, " \t\r\n")) == "null" {
		return nil // json.Unmarshal would set *obj to a nil map, which fn could not fill
	}
	if trimmed[0] != '{' {
		if err := json.Unmarshal(data, obj); err != nil {
			return fmt.Errorf("not a JSON object: %w", err)
		}
		return fmt.Errorf("not a JSON object: starts with %q", trimmed[0])
	}
	return json.Unmarshal(data, obj)
}

func (kv *KVStore) decodeError(key string, rev uint64, err error) error {
	return &kvError{op: "update json", bucket: kv.bucket.name, key: key,
		err: fmt.Errorf("decode stored value (revision %d): %w", rev, err)}
}
