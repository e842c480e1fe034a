package natsclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeObject checks the guard UpdateJSON puts before the update
// function: a stored value is accepted only when it is one JSON object (and
// refused as such only when a number does not fit a float64) or JSON null
// (an empty object: nothing to lose), and what is accepted survives being
// written back (encode, decode) intact, so that an update never silently
// rewrites what it did not change.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, ` {"a":1}`, `{"n":1.5e3,"s":"x","l":[1,{}],"o":{"p":null}}`,
		`[]`, `null`, `"s"`, `1`, ``, ` `, `{"a":`, `{} {}`, `{"a":1}x`, "\ufeff{}", `{"a":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj := map[string]any{}
		err := decodeObject(data, &obj)
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		isObject := json.Valid(data) && len(trimmed) > 0 && trimmed[0] == '{'
		isNull := string(bytes.TrimRight(trimmed, " \t\r\n")) == "null"
		var typeErr *json.UnmarshalTypeError
		switch {
		case err == nil && !isObject && !isNull:
			t.Fatalf("decodeObject(%q) accepted what is not one JSON object", data)
		case err != nil && isNull:
			t.Fatalf("decodeObject(%q) refused null, which reads as an empty object: %v", data, err)
		case err == nil && isNull && len(obj) != 0:
			t.Fatalf("decodeObject(%q) gave %v, want an empty object", data, obj)
		case err != nil && isObject && !errors.As(err, &typeErr):
			// A valid object may still not fit a map[string]any (a number
			// beyond float64, 1e400); that is a type error, nothing else.
			t.Fatalf("decodeObject(%q) refused a JSON object: %v", data, err)
		case err != nil:
			return
		}
		if obj == nil {
			t.Fatalf("decodeObject(%q) left a nil map", data)
		}
		encoded, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
		again := map[string]any{}
		if err := decodeObject(encoded, &again); err != nil || !reflect.DeepEqual(obj, again) {
			t.Fatalf("round trip of %q: %s decodes to %v, %v", data, encoded, again, err)
		}
	})
}
