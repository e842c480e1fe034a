package reliability_test

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The model must reject what a broken client or server would produce, and
// accept what a correct one may: each case is a small hand-made history of
// one key, operations given as [call, return] (return -1: unknown outcome,
// pending forever).
func TestLinearizableModelJudgesHandMadeHistories(t *testing.T) {
	type op struct {
		client    int
		call, ret int64
		in        kvInput
		out       kvOutput
	}
	v := func(n int, tag string) kvValue { return kvValue{N: n, Tag: tag} }
	put := func(val kvValue) kvInput { return kvInput{Op: opPut, Key: "k", Value: val} }
	update := func(val kvValue, expect uint64) kvInput {
		return kvInput{Op: opUpdate, Key: "k", Value: val, Expect: expect}
	}
	inc := kvInput{Op: opIncrement, Key: "k"}
	get := kvInput{Op: opGet, Key: "k"}
	ok := func(rev uint64) kvOutput { return kvOutput{Result: resultOK, Rev: rev} }
	read := func(val kvValue, rev uint64) kvOutput { return kvOutput{Result: resultOK, Value: val, Rev: rev} }
	cases := []struct {
		name         string
		linearizable bool
		ops          []op
	}{
		{"sequential writes and reads", true, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{0, 2, 3, get, read(v(5, "a"), 3)},
			{1, 4, 5, update(v(7, "b"), 3), ok(9)},
			{1, 6, 7, inc, kvOutput{Result: resultOK}},
			{0, 8, 9, get, read(v(8, "b"), 12)},
		}},
		{"an increment applied twice", false, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, 3, inc, kvOutput{Result: resultOK}},
			{0, 4, 5, get, read(v(7, "a"), 6)},
		}},
		{"an increment of unknown outcome may have been applied", true, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, -1, inc, kvOutput{Result: resultUnknown}},
			{0, 4, 5, get, read(v(6, "a"), 6)},
		}},
		{"or not", true, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, -1, inc, kvOutput{Result: resultUnknown}},
			{0, 4, 5, get, read(v(5, "a"), 3)},
		}},
		{"a write refused as a conflict while the key was at its expected revision", false, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, 3, update(v(6, "b"), 3), kvOutput{Result: resultConflict}},
			{0, 4, 5, get, read(v(5, "a"), 3)},
		}},
		{"a refused write that was stored", false, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, 3, update(v(6, "b"), 3), kvOutput{Result: resultFailed}},
			{0, 4, 5, get, read(v(6, "b"), 4)},
		}},
		{"a busy refusal says nothing of the key", true, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, 3, update(v(6, "b"), 3), kvOutput{Result: resultBusy}},
			{0, 4, 5, get, read(v(5, "a"), 3)},
		}},
		{"a stale read", false, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, 3, put(v(6, "b")), ok(4)},
			{0, 4, 5, get, read(v(5, "a"), 3)},
		}},
		{"a write's revision not above the key's", false, []op{
			{0, 0, 1, put(v(5, "a")), ok(3)},
			{1, 2, 3, put(v(6, "b")), ok(3)},
		}},
		{"update expecting revision 0 creates a missing key", true, []op{
			{0, 0, 1, update(v(1, "a"), 0), ok(2)},
			{0, 2, 3, get, read(v(1, "a"), 2)},
		}},
		{"a put cannot conflict", false, []op{
			{0, 0, 1, put(v(5, "a")), kvOutput{Result: resultConflict}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var history []porcupine.Operation
			for _, o := range c.ops {
				ret := o.ret
				if ret < 0 {
					ret = math.MaxInt64
				}
				history = append(history, porcupine.Operation{ClientId: o.client, Input: o.in, Call: o.call, Output: o.out, Return: ret})
			}
			if got := porcupine.CheckOperations(kvModel, history); got != c.linearizable {
				t.Errorf("linearizable = %v, want %v", got, c.linearizable)
			}
		})
	}
}

// The stream check must flag each way a stream can break its promises.
func TestLinearizableStreamCheckFlagsEachBrokenPromise(t *testing.T) {
	// One publisher sent p0-0 … p0-3: 0 and 1 acknowledged at 1 and 2, 2 of
	// unknown outcome, 3 acknowledged at 4.
	pub := func() []*streamPublisher {
		return []*streamPublisher{{id: 0, next: 4,
			acked: map[int]uint64{0: 1, 1: 2, 3: 4}, unknown: map[int]bool{2: true}}}
	}
	cases := []struct {
		name           string
		stored         map[uint64]string
		wantViolations int
		unknownStored  int
	}{
		{"all there, the unknown one stored", map[uint64]string{1: "p0-0", 2: "p0-1", 3: "p0-2", 4: "p0-3"}, 0, 1},
		{"all there, the unknown one not", map[uint64]string{1: "p0-0", 2: "p0-1", 4: "p0-3"}, 0, 0},
		{"an acknowledged message lost", map[uint64]string{1: "p0-0", 4: "p0-3"}, 1, 0},
		{"a message stored twice", map[uint64]string{1: "p0-0", 2: "p0-1", 3: "p0-1", 4: "p0-3"}, 1, 0},
		{"a message never sent", map[uint64]string{1: "p0-0", 2: "p0-1", 3: "p9-0", 4: "p0-3"}, 1, 0},
		{"a message stored elsewhere than acknowledged", map[uint64]string{1: "p0-0", 3: "p0-1", 4: "p0-3"}, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			violations, unknownStored := streamViolations(pub(), c.stored)
			if len(violations) != c.wantViolations || unknownStored != c.unknownStored {
				t.Errorf("violations %q, unknown stored %d; want %d violations, %d unknown stored",
					violations, unknownStored, c.wantViolations, c.unknownStored)
			}
		})
	}
	// Order: acknowledgements that go backwards.
	backwards := []*streamPublisher{{id: 0, next: 2, acked: map[int]uint64{0: 2, 1: 1}, unknown: map[int]bool{}}}
	if violations, _ := streamViolations(backwards, map[uint64]string{1: "p0-1", 2: "p0-0"}); len(violations) != 1 {
		t.Errorf("acknowledgements out of the publisher's order: violations %q, want 1", violations)
	}
}
