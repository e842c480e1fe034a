// Ported from nats.go v1.55.0, jetstream/test/kv_test.go:
//
// Copyright 2023-2026 The NATS Authors
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.
//
// Changes: the package and harness (see harness_test.go); places where
// natsclient differs on purpose are marked "Difference:"; sleeps that waited
// for an event wait for the event. Not ported, as they test bucket
// configuration across accounts, domains, mirrors and sources rather than
// operations on keys: TestListKeyValueStores (which also needs more than its 30s
// for 1025 buckets made through the client), TestKeyValueCrossAccounts, TestKeyValueMirrorCrossDomains, TestKeyValueMirrorDirectGet, TestKeyValueCreateRepairOldKV, TestKeyValueReusesSourceConfig, TestKeyValueWithSources.

package compat_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/c360/natsclient/testing/natstest"
)

func TestKeyValueBasics(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", History: 5, TTL: time.Hour, Metadata: map[string]string{"foo": "bar"}, LimitMarkerTTL: time.Minute})
		expectOk(t, err)

		if kv.Bucket() != "TEST" {
			t.Fatalf("Expected bucket name to be %q, got %q", "TEST", kv.Bucket())
		}

		// Simple Put
		r, err := kv.Put(ctx, "name", []byte("derek"))
		expectOk(t, err)
		if r != 1 {
			t.Fatalf("Expected 1 for the revision, got %d", r)
		}

		// put, invalid key
		_, err = kv.Put(ctx, ".invalid", []byte("value"))
		expectErr(t, err, jetstream.ErrInvalidKey)

		// Simple Get
		e, err := kv.Get(ctx, "name")
		expectOk(t, err)
		if string(e.Value()) != "derek" {
			t.Fatalf("Got wrong value: %q vs %q", e.Value(), "derek")
		}
		if e.Revision() != 1 {
			t.Fatalf("Expected 1 for the revision, got %d", e.Revision())
		}

		// get, invalid key
		_, err = kv.Get(ctx, ".invalid")
		expectErr(t, err, jetstream.ErrInvalidKey)

		// Delete
		err = kv.Delete(ctx, "name")
		expectOk(t, err)
		_, err = kv.Get(ctx, "name")
		expectErr(t, err, jetstream.ErrKeyNotFound)
		r, err = kv.Create(ctx, "name", []byte("derek"))
		expectOk(t, err)
		if r != 3 {
			t.Fatalf("Expected 3 for the revision, got %d", r)
		}
		err = kv.Delete(ctx, "name", jetstream.LastRevision(4))
		expectErr(t, err)
		err = kv.Delete(ctx, "name", jetstream.LastRevision(3))
		expectOk(t, err)

		// delete, invalid key
		err = kv.Delete(ctx, ".invalid")
		expectErr(t, err, jetstream.ErrInvalidKey)

		// Conditional Updates.
		r, err = kv.Update(ctx, "name", []byte("rip"), 4)
		expectOk(t, err)
		_, err = kv.Update(ctx, "name", []byte("ik"), 3)
		expectErr(t, err)
		_, err = kv.Update(ctx, "name", []byte("ik"), r)
		expectOk(t, err)
		r, err = kv.Create(ctx, "age", []byte("22"))
		expectOk(t, err)
		_, err = kv.Update(ctx, "age", []byte("33"), r)
		expectOk(t, err)

		// Status
		status, err := kv.Status(ctx)
		expectOk(t, err)
		if status.History() != 5 {
			t.Fatalf("expected history of 5 got %d", status.History())
		}
		if status.Bucket() != "TEST" {
			t.Fatalf("expected bucket TEST got %v", status.Bucket())
		}
		if status.TTL() != time.Hour {
			t.Fatalf("expected 1 hour TTL got %v", status.TTL())
		}
		if status.Values() != 7 {
			t.Fatalf("expected 7 values got %d", status.Values())
		}
		if status.BackingStore() != "JetStream" {
			t.Fatalf("invalid backing store kind %s", status.BackingStore())
		}
		if status.Metadata()["foo"] != "bar" {
			t.Fatalf("expected metadata foo to be bar got %v", status.Metadata()["foo"])
		}

		kvs := status.(*jetstream.KeyValueBucketStatus)
		si := kvs.StreamInfo()
		if si == nil {
			t.Fatalf("StreamInfo not received")
		}
	})
}

func TestKeyValueTTL(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", History: 5, TTL: 100 * time.Millisecond, LimitMarkerTTL: time.Second})
		expectOk(t, err)

		_, err = kv.Put(ctx, "name", []byte("pp"))
		expectOk(t, err)

		watcher, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
		expectOk(t, err)
		defer watcher.Stop()

		// The purge marker says the value expired: wait for it, where
		// nats.go sleeps 500ms, then look.
		select {
		case v := <-watcher.Updates():
			if v == nil || v.Key() != "name" || v.Operation() != jetstream.KeyValuePurge {
				t.Fatalf("Expected purge operation for key 'name', got: %+v", v)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Expected update notification for key 'name', got nothing")
		}

		_, err = kv.Get(ctx, "name")
		expectErr(t, err, jetstream.ErrKeyNotFound)
	})
}

func TestCreateKeyValue(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		// invalid bucket name
		_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST.", Description: "Test KV"})
		expectErr(t, err, jetstream.ErrInvalidBucketName)

		_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "Test KV"})
		expectOk(t, err)

		// Check that we can't overwrite existing bucket.
		_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "New KV"})
		expectErr(t, err, jetstream.ErrBucketExists)

		// assert that we're backwards compatible
		expectErr(t, err, jetstream.ErrStreamNameAlreadyInUse)

		// invalid configs
		_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "NEW", History: 200})
		expectErr(t, err, jetstream.ErrHistoryTooLarge)
	})
}

func TestUpdateKeyValue(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		// cannot update a non-existing bucket
		_, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "Test KV"})
		expectErr(t, err, jetstream.ErrBucketNotFound)

		_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "Test KV"})
		expectOk(t, err)

		// update the bucket
		_, err = js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "New KV"})
		expectOk(t, err)
	})
}

func TestCreateOrUpdateKeyValue(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		// invalid bucket name
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST.", Description: "Test KV"})
		expectErr(t, err, jetstream.ErrInvalidBucketName)

		_, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "Test KV"})
		expectOk(t, err)

		// update the bucket
		_, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", Description: "New KV"})
		expectOk(t, err)
	})
}

func TestKeyValueHistory(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "LIST", History: 10})
		expectOk(t, err)

		for i := 0; i < 50; i++ {
			age := strconv.FormatUint(uint64(i+22), 10)
			_, err := kv.Put(ctx, "age", []byte(age))
			expectOk(t, err)
		}

		vl, err := kv.History(ctx, "age")
		expectOk(t, err)

		if len(vl) != 10 {
			t.Fatalf("Expected %d values, got %d", 10, len(vl))
		}
		for i, v := range vl {
			if v.Key() != "age" {
				t.Fatalf("Expected key of %q, got %q", "age", v.Key())
			}
			if v.Revision() != uint64(i+41) {
				// History of 10, sent 50..
				t.Fatalf("Expected revision of %d, got %d", i+41, v.Revision())
			}
			age, err := strconv.Atoi(string(v.Value()))
			expectOk(t, err)
			if age != i+62 {
				t.Fatalf("Expected data value of %d, got %d", i+62, age)
			}
		}
	})
}

func TestKeyValueWatch(t *testing.T) {
	expectUpdateF := func(t *testing.T, watcher jetstream.KeyWatcher) func(key, value string, revision uint64) {
		return func(key, value string, revision uint64) {
			t.Helper()
			select {
			case v := <-watcher.Updates():
				if v.Key() != key || string(v.Value()) != value || v.Revision() != revision {
					t.Fatalf("Did not get expected: %q %q %d vs %q %q %d", v.Key(), string(v.Value()), v.Revision(), key, value, revision)
				}
			case <-time.After(time.Second):
				t.Fatalf("Did not receive an update like expected")
			}
		}
	}
	expectDeleteF := func(t *testing.T, watcher jetstream.KeyWatcher) func(key string, revision uint64) {
		return func(key string, revision uint64) {
			t.Helper()
			select {
			case v := <-watcher.Updates():
				if v.Operation() != jetstream.KeyValueDelete {
					t.Fatalf("Expected a delete operation but got %+v", v)
				}
				if v.Revision() != revision {
					t.Fatalf("Did not get expected revision: %d vs %d", revision, v.Revision())
				}
			case <-time.After(time.Second):
				t.Fatalf("Did not receive an update like expected")
			}
		}
	}
	expectPurgeF := func(t *testing.T, watcher jetstream.KeyWatcher) func(key string, revision uint64) {
		return func(key string, revision uint64) {
			t.Helper()
			select {
			case v := <-watcher.Updates():
				if v.Operation() != jetstream.KeyValuePurge {
					t.Fatalf("Expected a delete operation but got %+v", v)
				}
				if v.Revision() != revision {
					t.Fatalf("Did not get expected revision: %d vs %d", revision, v.Revision())
				}
			case <-time.After(time.Second):
				t.Fatalf("Did not receive an update like expected")
			}
		}
	}
	expectInitDoneF := func(t *testing.T, watcher jetstream.KeyWatcher) func() {
		return func() {
			t.Helper()
			select {
			case v := <-watcher.Updates():
				if v != nil {
					t.Fatalf("Did not get expected: %+v", v)
				}
			case <-time.After(time.Second):
				t.Fatalf("Did not receive a init done like expected")
			}
		}
	}

	t.Run("default watcher", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
			expectOk(t, err)

			watcher, err := kv.WatchAll(ctx)
			expectOk(t, err)
			defer watcher.Stop()

			expectInitDone := expectInitDoneF(t, watcher)
			expectUpdate := expectUpdateF(t, watcher)
			expectDelete := expectDeleteF(t, watcher)
			// Make sure we already got an initial value marker.
			expectInitDone()

			_, err = kv.Create(ctx, "name", []byte("derek"))
			expectOk(t, err)
			expectUpdate("name", "derek", 1)
			_, err = kv.Put(ctx, "name", []byte("rip"))
			expectOk(t, err)
			expectUpdate("name", "rip", 2)
			_, err = kv.Put(ctx, "name", []byte("ik"))
			expectOk(t, err)
			expectUpdate("name", "ik", 3)
			_, err = kv.Put(ctx, "age", []byte("22"))
			expectOk(t, err)
			expectUpdate("age", "22", 4)
			_, err = kv.Put(ctx, "age", []byte("33"))
			expectOk(t, err)
			expectUpdate("age", "33", 5)
			expectOk(t, kv.Delete(ctx, "age"))
			expectDelete("age", 6)

			// Stop first watcher.
			watcher.Stop()

			// Now try wildcard matching and make sure we only get last value when starting.
			_, err = kv.Put(ctx, "t.name", []byte("rip"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.name", []byte("ik"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.age", []byte("22"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.age", []byte("44"))
			expectOk(t, err)

			watcher, err = kv.Watch(ctx, "t.*")
			expectOk(t, err)

			expectInitDone = expectInitDoneF(t, watcher)
			expectUpdate = expectUpdateF(t, watcher)
			expectUpdate("t.name", "ik", 8)
			expectUpdate("t.age", "44", 10)
			expectInitDone()
			watcher.Stop()

			// test watcher with multiple filters
			watcher, err = kv.WatchFiltered(ctx, []string{"t.name", "name"})
			expectOk(t, err)
			expectInitDone = expectInitDoneF(t, watcher)
			expectUpdate = expectUpdateF(t, watcher)
			expectPurge := expectPurgeF(t, watcher)
			expectUpdate("name", "ik", 3)
			expectUpdate("t.name", "ik", 8)
			expectInitDone()
			err = kv.Purge(ctx, "name")
			expectOk(t, err)
			expectPurge("name", 11)
			defer watcher.Stop()
		})
	})

	t.Run("watcher with history included", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH", History: 64})
			expectOk(t, err)

			_, err = kv.Create(ctx, "name", []byte("derek"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "name", []byte("rip"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "name", []byte("ik"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "age", []byte("22"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "age", []byte("33"))
			expectOk(t, err)
			expectOk(t, kv.Delete(ctx, "age"))

			// when using IncludeHistory(), UpdatesOnly() is not allowed
			if _, err := kv.WatchAll(ctx, jetstream.IncludeHistory(), jetstream.UpdatesOnly()); !errors.Is(err, jetstream.ErrInvalidOption) {
				t.Fatalf("Expected %v, got %v", jetstream.ErrInvalidOption, err)
			}

			watcher, err := kv.WatchAll(ctx, jetstream.IncludeHistory())
			expectOk(t, err)
			defer watcher.Stop()

			expectInitDone := expectInitDoneF(t, watcher)
			expectUpdate := expectUpdateF(t, watcher)
			expectDelete := expectDeleteF(t, watcher)
			expectUpdate("name", "derek", 1)
			expectUpdate("name", "rip", 2)
			expectUpdate("name", "ik", 3)
			expectUpdate("age", "22", 4)
			expectUpdate("age", "33", 5)
			expectDelete("age", 6)
			expectInitDone()
			_, err = kv.Put(ctx, "name", []byte("pp"))
			expectOk(t, err)
			expectUpdate("name", "pp", 7)

			// Stop first watcher.
			watcher.Stop()

			_, err = kv.Put(ctx, "t.name", []byte("rip"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.name", []byte("ik"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.age", []byte("22"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.age", []byte("44"))
			expectOk(t, err)

			// try wildcard watcher and make sure we get all historical values
			watcher, err = kv.Watch(ctx, "t.*", jetstream.IncludeHistory())
			expectOk(t, err)
			defer watcher.Stop()
			expectInitDone = expectInitDoneF(t, watcher)
			expectUpdate = expectUpdateF(t, watcher)

			expectUpdate("t.name", "rip", 8)
			expectUpdate("t.name", "ik", 9)
			expectUpdate("t.age", "22", 10)
			expectUpdate("t.age", "44", 11)
			expectInitDone()

			_, err = kv.Put(ctx, "t.name", []byte("pp"))
			expectOk(t, err)
			expectUpdate("t.name", "pp", 12)
		})
	})

	t.Run("watcher with updates only", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH", History: 64})
			expectOk(t, err)

			_, err = kv.Create(ctx, "name", []byte("derek"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "name", []byte("rip"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "age", []byte("22"))
			expectOk(t, err)

			// when using UpdatesOnly(), IncludeHistory() is not allowed
			if _, err := kv.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.IncludeHistory()); !errors.Is(err, jetstream.ErrInvalidOption) {
				t.Fatalf("Expected %v, got %v", jetstream.ErrInvalidOption, err)
			}

			watcher, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
			expectOk(t, err)
			defer watcher.Stop()
			expectUpdate := expectUpdateF(t, watcher)
			expectDelete := expectDeleteF(t, watcher)

			// now update some keys and expect updates
			_, err = kv.Put(ctx, "name", []byte("pp"))
			expectOk(t, err)
			expectUpdate("name", "pp", 4)
			_, err = kv.Put(ctx, "age", []byte("44"))
			expectOk(t, err)
			expectUpdate("age", "44", 5)
			expectOk(t, kv.Delete(ctx, "age"))
			expectDelete("age", 6)

			// Stop first watcher.
			watcher.Stop()

			_, err = kv.Put(ctx, "t.name", []byte("rip"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.name", []byte("ik"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.age", []byte("22"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "t.age", []byte("44"))
			expectOk(t, err)

			// try wildcard watcher and make sure we do not get any values initially
			watcher, err = kv.Watch(ctx, "t.*", jetstream.UpdatesOnly())
			expectOk(t, err)
			defer watcher.Stop()
			expectUpdate = expectUpdateF(t, watcher)

			// update some keys and expect updates
			_, err = kv.Put(ctx, "t.name", []byte("pp"))
			expectOk(t, err)
			expectUpdate("t.name", "pp", 11)
			_, err = kv.Put(ctx, "t.age", []byte("66"))
			expectOk(t, err)
			expectUpdate("t.age", "66", 12)
		})
	})

	t.Run("watcher with start revision", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
			expectOk(t, err)

			_, err = kv.Create(ctx, "name", []byte("derek"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "name", []byte("rip"))
			expectOk(t, err)
			_, err = kv.Put(ctx, "age", []byte("22"))
			expectOk(t, err)

			watcher, err := kv.WatchAll(ctx, jetstream.ResumeFromRevision(2))
			expectOk(t, err)
			defer watcher.Stop()

			expectUpdate := expectUpdateF(t, watcher)

			// check that we get only updates after revision 2
			expectUpdate("name", "rip", 2)
			expectUpdate("age", "22", 3)

			// stop first watcher
			watcher.Stop()

			_, err = kv.Put(ctx, "name2", []byte("ik"))
			expectOk(t, err)

			// create a new watcher with start revision 3
			watcher, err = kv.WatchAll(ctx, jetstream.ResumeFromRevision(3))
			expectOk(t, err)
			defer watcher.Stop()

			expectUpdate = expectUpdateF(t, watcher)

			// check that we get only updates after revision 3
			expectUpdate("age", "22", 3)
			expectUpdate("name2", "ik", 4)
		})
	})

	t.Run("invalid watchers", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
			expectOk(t, err)

			// empty keys
			_, err = kv.Watch(ctx, "")
			expectErr(t, err, jetstream.ErrInvalidKey)

			// invalid key
			_, err = kv.Watch(ctx, "a.>.b")
			expectErr(t, err, jetstream.ErrInvalidKey)

			_, err = kv.Watch(ctx, "foo.")
			expectErr(t, err, jetstream.ErrInvalidKey)

			// consecutive dots (empty token) must be rejected early, not passed to server
			_, err = kv.Watch(ctx, "foo..bar")
			expectErr(t, err, jetstream.ErrInvalidKey)

			_, err = kv.Watch(ctx, "a..b.c")
			expectErr(t, err, jetstream.ErrInvalidKey)

			// conflicting options
			_, err = kv.Watch(ctx, "foo", jetstream.IncludeHistory(), jetstream.UpdatesOnly())
			expectErr(t, err, jetstream.ErrInvalidOption)
		})
	})

	t.Run("filtered watch with no filters", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
			expectOk(t, err)

			// this should behave like WatchAll
			watcher, err := kv.WatchFiltered(ctx, []string{})
			expectOk(t, err)
			defer watcher.Stop()

			expectInitDone := expectInitDoneF(t, watcher)
			expectUpdate := expectUpdateF(t, watcher)
			expectDelete := expectDeleteF(t, watcher)
			// Make sure we already got an initial value marker.
			expectInitDone()

			_, err = kv.Create(ctx, "name", []byte("derek"))
			expectOk(t, err)
			expectUpdate("name", "derek", 1)
			_, err = kv.Put(ctx, "name", []byte("rip"))
			expectOk(t, err)
			expectUpdate("name", "rip", 2)
			_, err = kv.Put(ctx, "name", []byte("ik"))
			expectOk(t, err)
			expectUpdate("name", "ik", 3)
			_, err = kv.Put(ctx, "age", []byte("22"))
			expectOk(t, err)
			expectUpdate("age", "22", 4)
			_, err = kv.Put(ctx, "age", []byte("33"))
			expectOk(t, err)
			expectUpdate("age", "33", 5)
			expectOk(t, kv.Delete(ctx, "age"))
			expectDelete("age", 6)
		})
	})

	t.Run("stop watcher should not block", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
			expectOk(t, err)

			watcher, err := kv.WatchAll(ctx)
			expectOk(t, err)

			expectInitDone := expectInitDoneF(t, watcher)
			expectInitDone()

			err = watcher.Stop()
			expectOk(t, err)

			select {
			case _, ok := <-watcher.Updates():
				if ok {
					t.Fatalf("Expected channel to be closed")
				}
			case <-time.After(100 * time.Millisecond):
				break
			}
		})
	})
}

func TestKeyValueWatchContext(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCHCTX"})
		expectOk(t, err)

		watcher, err := kv.WatchAll(ctx)
		expectOk(t, err)
		defer watcher.Stop()

		// Trigger unsubscribe internally.
		cancel()

		// Wait for the unsubscribe to be done: Updates is closed then.
		for range watcher.Updates() {
		}

		// Difference: Stop is idempotent and returns nil, also on a watcher
		// that its context stopped; nats.go returns nats.ErrBadSubscription.
		err = watcher.Stop()
		if err != nil {
			t.Errorf("Expected nil, got: %v", err)
		}
	})
}

func TestKeyValueWatchContextUpdates(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCHCTX"})
		expectOk(t, err)

		watcher, err := kv.WatchAll(ctx)
		expectOk(t, err)
		defer watcher.Stop()

		// Pull the initial state done marker which is nil.
		select {
		case v := <-watcher.Updates():
			if v != nil {
				t.Fatalf("Expected nil marker, got %+v", v)
			}
		case <-time.After(time.Second):
			t.Fatalf("Did not receive nil marker like expected")
		}

		// Fire a timer and cancel the context after 250ms.
		time.AfterFunc(250*time.Millisecond, cancel)

		// Make sure canceling will break us out here.
		select {
		case <-watcher.Updates():
		case <-time.After(5 * time.Second):
			t.Fatalf("Did not break out like expected")
		}
	})
}

func TestKeyValueBindStore(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
		expectOk(t, err)

		// Now bind to it..
		_, err = js.KeyValue(ctx, "WATCH")
		expectOk(t, err)

		// Make sure we can't bind to a non-kv style stream.
		// We have some protection with stream name prefix.
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     "KV_TEST",
			Subjects: []string{"foo"},
		})
		expectOk(t, err)

		_, err = js.KeyValue(ctx, "TEST")
		expectErr(t, err)
		// Difference: errors are wrapped (they name the bucket), so errors.Is
		// where nats.go compares with ==.
		if !errors.Is(err, jetstream.ErrBadBucket) {
			t.Fatalf("Expected %v but got %v", jetstream.ErrBadBucket, err)
		}
	})
}

func TestKeyValueDeleteStore(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WATCH"})
		expectOk(t, err)

		err = js.DeleteKeyValue(ctx, "WATCH")
		expectOk(t, err)

		// delete again should fail
		err = js.DeleteKeyValue(ctx, "WATCH")
		expectErr(t, err, jetstream.ErrBucketNotFound)

		// check that we're backwards compatible
		expectErr(t, err, jetstream.ErrStreamNotFound)

		_, err = js.KeyValue(ctx, "WATCH")
		expectErr(t, err, jetstream.ErrBucketNotFound)
	})
}

func TestKeyValueDeleteVsPurge(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", History: 10})
		expectOk(t, err)

		put := func(key, value string) {
			t.Helper()
			_, err := kv.Put(ctx, key, []byte(value))
			expectOk(t, err)
		}

		// Put in a few names and ages.
		put("name", "derek")
		put("age", "22")
		put("name", "ivan")
		put("age", "33")
		put("name", "rip")
		put("age", "44")

		expectOk(t, kv.Delete(ctx, "age"))
		entries, err := kv.History(ctx, "age")
		expectOk(t, err)
		// Expect three entries and delete marker.
		if len(entries) != 4 {
			t.Fatalf("Expected 4 entries for age after delete, got %d", len(entries))
		}
		err = kv.Purge(ctx, "name", jetstream.LastRevision(4))
		expectErr(t, err)
		err = kv.Purge(ctx, "name", jetstream.LastRevision(5))
		expectOk(t, err)
		// Check marker
		e, err := kv.Get(ctx, "name")
		expectErr(t, err, jetstream.ErrKeyNotFound)
		if e != nil {
			t.Fatalf("Expected a nil entry but got %v", e)
		}
		entries, err = kv.History(ctx, "name")
		expectOk(t, err)
		if len(entries) != 1 {
			t.Fatalf("Expected only 1 entry for age after delete, got %d", len(entries))
		}
		// Make sure history also reports the purge operation.
		if e := entries[0]; e.Operation() != jetstream.KeyValuePurge {
			t.Fatalf("Expected a purge operation but got %v", e.Operation())
		}
	})
}

func TestKeyValueDeleteTombstones(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", History: 10})
		expectOk(t, err)

		put := func(key, value string) {
			t.Helper()
			_, err := kv.Put(ctx, key, []byte(value))
			expectOk(t, err)
		}

		v := strings.Repeat("ABC", 33)
		for i := 1; i <= 100; i++ {
			put(fmt.Sprintf("key-%d", i), v)
		}
		// Now delete them.
		for i := 1; i <= 100; i++ {
			err := kv.Delete(ctx, fmt.Sprintf("key-%d", i))
			expectOk(t, err)
		}

		// Now cleanup.
		err = kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1))
		expectOk(t, err)

		si, err := js.Stream(ctx, "KV_KVS")
		expectOk(t, err)
		if si.CachedInfo().State.Msgs != 0 {
			t.Fatalf("Expected no stream msgs to be left, got %d", si.CachedInfo().State.Msgs)
		}

		// Try with context
		ctx2, cancel := context.WithTimeout(context.Background(), 1*time.Second)
		defer cancel()
		err = kv.PurgeDeletes(nats.Context(ctx2))
		expectOk(t, err)
	})
}

func TestKeyValuePurgeDeletesMarkerThreshold(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", History: 10})
		expectOk(t, err)

		put := func(key, value string) {
			t.Helper()
			_, err := kv.Put(ctx, key, []byte(value))
			expectOk(t, err)
		}

		put("foo", "foo1")
		put("bar", "bar1")
		put("foo", "foo2")
		err = kv.Delete(ctx, "foo")
		expectOk(t, err)

		fooDeleted := time.Now()

		// The first marker must be older than the threshold: time has to
		// pass, there is no event to wait for.
		time.Sleep(200 * time.Millisecond)

		barDeleting := time.Now()
		err = kv.Delete(ctx, "bar")
		expectOk(t, err)

		// nats.go uses a fixed 100ms threshold, which a loaded machine can
		// outlast between Delete and PurgeDeletes, purging bar's marker too.
		// The threshold here is bar's age plus 100ms: still younger than
		// foo's marker by the 200ms above, whatever the machine's speed.
		threshold := time.Since(barDeleting) + 100*time.Millisecond
		if time.Since(fooDeleted) <= threshold {
			t.Fatalf("foo's marker is not older than the threshold %v", threshold)
		}
		err = kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(threshold))
		expectOk(t, err)

		// The key foo should have been completely cleared of the data
		// and the delete marker.
		fooEntries, err := kv.History(ctx, "foo")
		if err != jetstream.ErrKeyNotFound {
			t.Fatalf("Expected all entries for key foo to be gone, got err=%v entries=%v", err, fooEntries)
		}
		barEntries, err := kv.History(ctx, "bar")
		expectOk(t, err)
		if len(barEntries) != 1 {
			t.Fatalf("Expected 1 entry, got %v", barEntries)
		}
		if e := barEntries[0]; e.Operation() != jetstream.KeyValueDelete {
			t.Fatalf("Unexpected entry: %+v", e)
		}
	})
}

func TestKeyValueKeys(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", History: 2})
		expectOk(t, err)

		put := func(key, value string) {
			t.Helper()
			_, err := kv.Put(ctx, key, []byte(value))
			expectOk(t, err)
		}

		// Difference: an empty bucket has an empty slice of keys, not
		// jetstream.ErrNoKeysFound.
		keys, err := kv.Keys(ctx)
		expectOk(t, err)
		if keys == nil || len(keys) != 0 {
			t.Fatalf("Expected an empty slice, got %#v", keys)
		}

		// Put in a few names and ages.
		put("name", "derek")
		put("age", "22")
		put("country", "US")
		put("name", "ivan")
		put("age", "33")
		put("country", "US")
		put("name", "rip")
		put("age", "44")
		put("country", "MT")

		keys, err = kv.Keys(ctx)
		expectOk(t, err)

		kmap := make(map[string]struct{})
		for _, key := range keys {
			if _, ok := kmap[key]; ok {
				t.Fatalf("Already saw %q", key)
			}
			kmap[key] = struct{}{}
		}
		if len(kmap) != 3 {
			t.Fatalf("Expected 3 total keys, got %d", len(kmap))
		}
		expected := map[string]struct{}{
			"name":    struct{}{},
			"age":     struct{}{},
			"country": struct{}{},
		}
		if !reflect.DeepEqual(kmap, expected) {
			t.Fatalf("Expected %+v but got %+v", expected, kmap)
		}
		// Make sure delete and purge do the right thing and not return the keys.
		err = kv.Delete(ctx, "name")
		expectOk(t, err)
		err = kv.Purge(ctx, "country")
		expectOk(t, err)

		keys, err = kv.Keys(ctx)
		expectOk(t, err)

		kmap = make(map[string]struct{})
		for _, key := range keys {
			if _, ok := kmap[key]; ok {
				t.Fatalf("Already saw %q", key)
			}
			kmap[key] = struct{}{}
		}
		if len(kmap) != 1 {
			t.Fatalf("Expected 1 total key, got %d", len(kmap))
		}
		if _, ok := kmap["age"]; !ok {
			t.Fatalf("Expected %q to be only key present", "age")
		}
	})
}

func TestKeyValueListKeys(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", History: 2})
		expectOk(t, err)

		put := func(key, value string) {
			t.Helper()
			_, err := kv.Put(ctx, key, []byte(value))
			expectOk(t, err)
		}

		// Put in a few names and ages.
		put("name", "derek")
		put("age", "22")
		put("country", "US")
		put("name", "ivan")
		put("age", "33")
		put("country", "US")
		put("name", "rip")
		put("age", "44")
		put("country", "MT")

		keys, err := kv.ListKeys(ctx)
		expectOk(t, err)

		kmap := make(map[string]struct{})
		for key := range keys.Keys() {
			if _, ok := kmap[key]; ok {
				t.Fatalf("Already saw %q", key)
			}
			kmap[key] = struct{}{}
		}
		if len(kmap) != 3 {
			t.Fatalf("Expected 3 total keys, got %d", len(kmap))
		}
		expected := map[string]struct{}{
			"name":    struct{}{},
			"age":     struct{}{},
			"country": struct{}{},
		}
		if !reflect.DeepEqual(kmap, expected) {
			t.Fatalf("Expected %+v but got %+v", expected, kmap)
		}
		// Make sure delete and purge do the right thing and not return the keys.
		err = kv.Delete(ctx, "name")
		expectOk(t, err)
		err = kv.Purge(ctx, "country")
		expectOk(t, err)

		keys, err = kv.ListKeys(ctx)
		expectOk(t, err)

		kmap = make(map[string]struct{})
		for key := range keys.Keys() {
			if _, ok := kmap[key]; ok {
				t.Fatalf("Already saw %q", key)
			}
			kmap[key] = struct{}{}
		}
		if len(kmap) != 1 {
			t.Fatalf("Expected 1 total key, got %d", len(kmap))
		}
		if _, ok := kmap["age"]; !ok {
			t.Fatalf("Expected %q to be only key present", "age")
		}
	})
}

func TestListKeysFiltered(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		// Create Key-Value store.
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", History: 2})
		expectOk(t, err)

		// Helper function to add key-value pairs.
		putKeys := func(data map[string]string) {
			for key, value := range data {
				t.Helper()
				_, err := kv.Put(ctx, key, []byte(value))
				expectOk(t, err)
			}
		}

		// Add key-value pairs.
		putKeys(map[string]string{
			"apple":  "fruit",
			"banana": "fruit",
			"carrot": "vegetable",
		})

		// Use filters to list keys matching "apple".
		filters := []string{"apple"}
		keyLister, err := kv.ListKeysFiltered(ctx, filters...)
		expectOk(t, err)

		// Collect filtered keys from KeyLister
		var filteredKeys []string
		for key := range keyLister.Keys() {
			filteredKeys = append(filteredKeys, key)
		}

		// Validate expected keys.
		expectedKeys := []string{"apple"}
		if len(filteredKeys) != len(expectedKeys) {
			t.Fatalf("Expected %d filtered key(s), got %d", len(expectedKeys), len(filteredKeys))
		}

		for _, key := range expectedKeys {
			if !contains(filteredKeys, key) {
				t.Fatalf("Expected key %s in filtered keys, but not found", key)
			}
		}

		// delete apple so we can ensure we do not see it later after another filtered search
		err = kv.Delete(ctx, "apple")
		expectOk(t, err)

		filters = []string{"apple"}
		keyLister, err = kv.ListKeysFiltered(ctx, filters...)
		expectOk(t, err)

		// reset filtered keys
		filteredKeys = nil
		for key := range keyLister.Keys() {
			filteredKeys = append(filteredKeys, key)
		}
		if len(filteredKeys) != 0 {
			t.Fatalf("Expected 0 deleted keys, but %d was found", len(filteredKeys))
		}
	})
}

func contains(slice []string, key string) bool {
	for _, k := range slice {
		if k == key {
			return true
		}
	}
	return false
}

func TestKeyValueDuplicatesWindow(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		checkWindow := func(ttl, expectedDuplicates time.Duration) {
			t.Helper()

			_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST", History: 5, TTL: ttl})
			expectOk(t, err)
			defer func() { expectOk(t, js.DeleteKeyValue(ctx, "TEST")) }()

			si, err := js.Stream(ctx, "KV_TEST")
			if err != nil {
				t.Fatalf("StreamInfo error: %v", err)
			}
			if si.CachedInfo().Config.Duplicates != expectedDuplicates {
				t.Fatalf("Expected duplicates to be %v, got %v", expectedDuplicates, si.CachedInfo().Config.Duplicates)
			}
		}

		checkWindow(0, 2*time.Minute)
		checkWindow(time.Hour, 2*time.Minute)
		checkWindow(5*time.Second, 5*time.Second)
	})
}

func TestKeyValueRePublish(t *testing.T) {
	withJSServer(t, func(t *testing.T, nc *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: "TEST_UPDATE",
		}); err != nil {
			t.Fatalf("Error creating store: %v", err)
		}
		// This is expected to fail since server does not support as of now
		// the update of RePublish.
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:    "TEST_UPDATE",
			RePublish: &jetstream.RePublish{Source: ">", Destination: "bar.>"},
		}); err == nil {
			t.Fatal("Expected failure, did not get one")
		}

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:    "TEST",
			RePublish: &jetstream.RePublish{Source: ">", Destination: "bar.>"},
		})
		if err != nil {
			t.Fatalf("Error creating store: %v", err)
		}
		si, err := js.Stream(ctx, "KV_TEST")
		if err != nil {
			t.Fatalf("Error getting stream info: %v", err)
		}
		if si.CachedInfo().Config.RePublish == nil {
			t.Fatal("Expected republish to be set, it was not")
		}

		sub, err := nc.SubscribeSync("bar.>")
		if err != nil {
			t.Fatalf("Error on sub: %v", err)
		}
		if _, err := kv.Put(ctx, "foo", []byte("value")); err != nil {
			t.Fatalf("Error on put: %v", err)
		}
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			t.Fatalf("Error on next: %v", err)
		}
		if v := string(msg.Data); v != "value" {
			t.Fatalf("Unexpected value: %s", v)
		}
		// The message should also have a header with the actual subject
		expected := "$KV.TEST.foo"
		if v := msg.Header.Get(jetstream.SubjectHeader); v != expected {
			t.Fatalf("Expected subject header %q, got %q", expected, v)
		}
	})
}

func TestKeyValueCreate(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       "TEST",
			Description:  "Test KV",
			MaxValueSize: 128,
			History:      10,
			TTL:          1 * time.Hour,
			MaxBytes:     1024,
			Storage:      jetstream.FileStorage,
		})
		if err != nil {
			t.Fatalf("Error creating kv: %v", err)
		}

		expectedStreamConfig := jetstream.StreamConfig{
			Name:              "KV_TEST",
			Description:       "Test KV",
			Subjects:          []string{"$KV.TEST.>"},
			MaxMsgs:           -1,
			MaxBytes:          1024,
			Discard:           jetstream.DiscardNew,
			MaxAge:            1 * time.Hour,
			MaxMsgsPerSubject: 10,
			MaxMsgSize:        128,
			Storage:           jetstream.FileStorage,
			DenyDelete:        true,
			AllowRollup:       true,
			AllowDirect:       true,
			MaxConsumers:      -1,
			Replicas:          1,
			Duplicates:        2 * time.Minute,
		}

		stream, err := js.Stream(ctx, "KV_TEST")
		if err != nil {
			t.Fatalf("Error getting stream: %v", err)
		}
		// server will set metadata values, so we need to clear them
		stream.CachedInfo().Config.Metadata = nil
		if !reflect.DeepEqual(stream.CachedInfo().Config, expectedStreamConfig) {
			t.Fatalf("Expected stream config to be %+v, got %+v", expectedStreamConfig, stream.CachedInfo().Config)
		}

		_, err = kv.Create(ctx, "key", []byte("1"))
		if err != nil {
			t.Fatalf("Error creating key: %v", err)
		}

		_, err = kv.Create(ctx, "key", []byte("1"))
		expected := "wrong last sequence: 1: key exists"
		if !strings.Contains(err.Error(), expected) {
			t.Fatalf("Expected %q, got: %v", expected, err)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			t.Fatalf("Expected ErrKeyExists, got: %v", err)
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Fatalf("Create conflict should not match ErrKeyRevisionMismatch, got: %v", err)
		}
		aerr := &jetstream.APIError{}
		if !errors.As(err, &aerr) {
			t.Fatalf("Expected APIError, got: %v", err)
		}
		if aerr.Description != "wrong last sequence: 1" {
			t.Fatalf("Unexpected APIError message, got: %v", aerr.Description)
		}
		if aerr.ErrorCode != 10071 {
			t.Fatalf("Unexpected error code, got: %v", aerr.ErrorCode)
		}
		if aerr.Code != jetstream.ErrKeyExists.APIError().Code {
			t.Fatalf("Unexpected error code, got: %v", aerr.Code)
		}
		var kerr jetstream.JetStreamError
		if !errors.As(err, &kerr) {
			t.Fatalf("Expected KeyValueError, got: %v", err)
		}
		if kerr.APIError().ErrorCode != 10071 {
			t.Fatalf("Unexpected error code, got: %v", kerr.APIError().ErrorCode)
		}
	})
}

func TestKeyValueCompression(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		kvCompressed, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      "A",
			Compression: true,
		})
		if err != nil {
			t.Fatalf("Error creating kv: %v", err)
		}

		status, err := kvCompressed.Status(ctx)
		if err != nil {
			t.Fatalf("Error getting bucket status: %v", err)
		}

		if !status.IsCompressed() {
			t.Fatalf("Expected bucket to be compressed")
		}

		kvStream, err := js.Stream(ctx, "KV_A")
		if err != nil {
			t.Fatalf("Error getting stream info: %v", err)
		}

		if kvStream.CachedInfo().Config.Compression != jetstream.S2Compression {
			t.Fatalf("Expected stream to be compressed with S2")
		}
	})
}

func TestKeyValueUpdateRevisionMismatch(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST"})
		if err != nil {
			t.Fatalf("Error creating kv: %v", err)
		}

		rev, err := kv.Create(ctx, "key", []byte("1"))
		if err != nil {
			t.Fatalf("Error creating key: %v", err)
		}

		_, err = kv.Update(ctx, "key", []byte("2"), rev+1)
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Fatalf("Expected ErrKeyRevisionMismatch, got: %v", err)
		}
		var aerr *jetstream.APIError
		if !errors.As(err, &aerr) {
			t.Fatalf("Expected APIError, got: %v", err)
		}
		if aerr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			t.Fatalf("Unexpected error code, got: %v", aerr.ErrorCode)
		}
	})
}

func TestKeyValueDeleteRevisionMismatch(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := natstest.Context(t, 5*time.Second)

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST"})
		if err != nil {
			t.Fatalf("Error creating kv: %v", err)
		}

		rev, err := kv.Create(ctx, "key", []byte("1"))
		if err != nil {
			t.Fatalf("Error creating key: %v", err)
		}

		err = kv.Delete(ctx, "key", jetstream.LastRevision(rev+1))
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Fatalf("Expected ErrKeyRevisionMismatch, got: %v", err)
		}
		var aerr *jetstream.APIError
		if !errors.As(err, &aerr) {
			t.Fatalf("Expected APIError, got: %v", err)
		}
		if aerr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			t.Fatalf("Unexpected error code, got: %v", aerr.ErrorCode)
		}

		err = kv.Purge(ctx, "key", jetstream.LastRevision(rev+1))
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Fatalf("Expected ErrKeyRevisionMismatch, got: %v", err)
		}

		if err := kv.Delete(ctx, "key", jetstream.LastRevision(rev)); err != nil {
			t.Fatalf("Delete with correct revision should succeed, got: %v", err)
		}
	})
}

func TestKeyValueLimitMarkerTTL(t *testing.T) {
	checkMsgHeaders := func(t *testing.T, js jetstream.JetStream, kv jetstream.KeyValue, key, expectedTTL, expectedReason string) {
		t.Helper()
		ctx := context.Background()
		stream, err := js.Stream(ctx, "KV_KVS")
		expectOk(t, err)
		msg, err := stream.GetLastMsgForSubject(ctx, "$KV.KVS."+key)
		expectOk(t, err)
		marker := msg.Header.Get(jetstream.MarkerReasonHeader)
		if marker != expectedReason {
			t.Fatalf("Expected marker to be MaxAge, got %q", marker)
		}
		ttl := msg.Header.Get(jetstream.MsgTTLHeader)
		if ttl != expectedTTL {
			t.Fatalf("Expected TTL to be 1s, got %q", ttl)
		}
	}

	checkMsgNotFound := func(t *testing.T, js jetstream.JetStream, kv jetstream.KeyValue, key string) {
		t.Helper()
		ctx := context.Background()
		stream, err := js.Stream(ctx, "KV_KVS")
		expectOk(t, err)
		msg, err := stream.GetLastMsgForSubject(ctx, "$KV.KVS."+key)
		if err == nil {
			t.Fatalf("Expected error getting message, got %v", msg)
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("Expected error to be ErrMsgNotFound, got: %v", err)
		}
	}

	t.Run("create with TTL", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", LimitMarkerTTL: time.Second})
			expectOk(t, err)

			// Put in a few names and ages.
			_, err = kv.Create(ctx, "age", []byte("22"), jetstream.KeyTTL(time.Second))
			expectOk(t, err)

			// create watcher to wait for deletion
			watcher, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
			expectOk(t, err)

			_, err = kv.Get(ctx, "age")
			expectOk(t, err)
			time.Sleep(1500 * time.Millisecond)

			_, err = kv.Get(ctx, "age")
			expectErr(t, err, jetstream.ErrKeyNotFound)
			// check if marker exists on stream
			checkMsgHeaders(t, js, kv, "age", "1s", "MaxAge")

			time.Sleep(time.Second)
			_, err = kv.Get(ctx, "age")
			expectErr(t, err, jetstream.ErrKeyNotFound)
			// now msg should be gone from stream
			checkMsgNotFound(t, js, kv, "age")

			entry := <-watcher.Updates()
			if entry == nil {
				t.Fatalf("Expected entry, got nil")
			}
			if entry.Operation() != jetstream.KeyValuePurge {
				t.Fatalf("Expected purge operation, got %v", entry.Operation())
			}
			if entry.Key() != "age" {
				t.Fatalf("Expected key %q, got %q", "age", entry.Key())
			}
		})
	})

	t.Run("purge with TTL", func(t *testing.T) {
		withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
			ctx := natstest.Context(t, 5*time.Second)

			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KVS", LimitMarkerTTL: time.Second})
			expectOk(t, err)

			// Put in a few names and ages.
			_, err = kv.Create(ctx, "age", []byte("22"))
			expectOk(t, err)

			watcher, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
			expectOk(t, err)

			err = kv.Purge(ctx, "age", jetstream.PurgeTTL(time.Second))
			expectOk(t, err)

			_, err = kv.Get(ctx, "age")
			expectErr(t, err, jetstream.ErrKeyNotFound)
			// check if msg with ttl exists on stream
			checkMsgHeaders(t, js, kv, "age", "1s", "")
			expectErr(t, err, jetstream.ErrKeyNotFound)

			time.Sleep(1500 * time.Millisecond)
			_, err = kv.Get(ctx, "age")
			expectErr(t, err, jetstream.ErrKeyNotFound)

			entry := <-watcher.Updates()
			if entry == nil {
				t.Fatalf("Expected entry, got nil")
			}
			if entry.Operation() != jetstream.KeyValuePurge {
				t.Fatalf("Expected purge operation, got %v", entry.Operation())
			}
			if entry.Key() != "age" {
				t.Fatalf("Expected key %q, got %q", "age", entry.Key())
			}
		})
	})
}

func TestKeyValueKeysDeduplicate(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST_KV", History: 5})
		if err != nil {
			t.Fatalf("Error creating KV: %v", err)
		}

		for i := range 10 {
			key := fmt.Sprintf("key_%d", i)
			if _, err := kv.PutString(ctx, key, "initial"); err != nil {
				t.Fatalf("Error putting key %s: %v", key, err)
			}
		}

		done := make(chan bool)
		go func() {
			for {
				select {
				case <-done:
					return
				default:
					for i := range 5 {
						key := fmt.Sprintf("key_%d", i)
						if _, err := kv.PutString(ctx, key, "updated"); err != nil {
							if errors.Is(err, nats.ErrConnectionClosed) {
								return
							}
							t.Logf("Error updating key %s: %v", key, err)
						}
					}
				}
			}
		}()

		for range 20 {
			keys, err := kv.Keys(ctx)
			if err != nil {
				t.Fatalf("Error getting keys: %v", err)
			}

			seen := make(map[string]struct{})
			for _, key := range keys {
				if _, exists := seen[key]; exists {
					t.Fatalf("Duplicate key found: %s", key)
				}
				seen[key] = struct{}{}
			}
		}

		close(done)
	})
}

func TestKeyValueGetRevision(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:  "TEST",
			History: 5,
		})
		if err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		if _, err := kv.Put(ctx, "key", []byte("value1")); err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		if _, err := kv.Put(ctx, "key", []byte("value2")); err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		entry, err := kv.GetRevision(ctx, "key", 1)
		if err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		if string(entry.Value()) != "value1" {
			t.Fatalf("Expected value1, got %s", string(entry.Value()))
		}

		if entry.Revision() != 1 {
			t.Fatalf("Expected revision 1, got %d", entry.Revision())
		}

		if err := kv.Delete(ctx, "key"); err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		_, err = kv.GetRevision(ctx, "key", 3)
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("Expected ErrKeyNotFound, got %v", err)
		}
	})
}

func TestKeyValueStatusBytes(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: "TEST",
		})
		if err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		if _, err := kv.Put(ctx, "key", []byte("value")); err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		status, err := kv.Status(ctx)
		if err != nil {
			t.Fatalf("Unexpected error: %v", err)
		}

		if status.Bytes() == 0 {
			t.Fatal("Expected Bytes() to return non-zero value")
		}
	})
}

func TestKeyValueConfig(t *testing.T) {
	withJSServer(t, func(t *testing.T, _ *nats.Conn, js jetstream.JetStream) {
		ctx := context.Background()

		originalCfg := jetstream.KeyValueConfig{
			Bucket:       "CONFIG_TEST",
			Description:  "test bucket for config retrieval",
			MaxValueSize: 1024,
			History:      10,
			TTL:          2 * time.Hour,
			MaxBytes:     1024 * 1024,
			Storage:      jetstream.FileStorage,
			Replicas:     1,
			Metadata:     map[string]string{"key": "value"},
		}

		kv, err := js.CreateKeyValue(ctx, originalCfg)
		if err != nil {
			t.Fatalf("Error creating KV: %v", err)
		}

		status, err := kv.Status(ctx)
		if err != nil {
			t.Fatalf("Error getting status: %v", err)
		}

		retrievedCfg := status.Config()

		if retrievedCfg.Bucket != originalCfg.Bucket {
			t.Errorf("Expected bucket %q, got %q", originalCfg.Bucket, retrievedCfg.Bucket)
		}
		if retrievedCfg.Description != originalCfg.Description {
			t.Errorf("Expected description %q, got %q", originalCfg.Description, retrievedCfg.Description)
		}
		if retrievedCfg.MaxValueSize != originalCfg.MaxValueSize {
			t.Errorf("Expected MaxValueSize %d, got %d", originalCfg.MaxValueSize, retrievedCfg.MaxValueSize)
		}
		if retrievedCfg.History != originalCfg.History {
			t.Errorf("Expected history %d, got %d", originalCfg.History, retrievedCfg.History)
		}
		if retrievedCfg.TTL != originalCfg.TTL {
			t.Errorf("Expected TTL %v, got %v", originalCfg.TTL, retrievedCfg.TTL)
		}
		if retrievedCfg.MaxBytes != originalCfg.MaxBytes {
			t.Errorf("Expected MaxBytes %d, got %d", originalCfg.MaxBytes, retrievedCfg.MaxBytes)
		}
		if retrievedCfg.Storage != originalCfg.Storage {
			t.Errorf("Expected storage %v, got %v", originalCfg.Storage, retrievedCfg.Storage)
		}
		if retrievedCfg.Replicas != originalCfg.Replicas {
			t.Errorf("Expected replicas %d, got %d", originalCfg.Replicas, retrievedCfg.Replicas)
		}
		if retrievedCfg.LimitMarkerTTL != originalCfg.LimitMarkerTTL {
			t.Errorf("Expected LimitMarkerTTL %v, got %v", originalCfg.LimitMarkerTTL, retrievedCfg.LimitMarkerTTL)
		}
		if retrievedCfg.Metadata["key"] != originalCfg.Metadata["key"] {
			t.Errorf("Expected Metadata[key] %q, got %q", originalCfg.Metadata["key"], retrievedCfg.Metadata["key"])
		}
	})
}
