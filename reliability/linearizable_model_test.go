package reliability_test

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// The model of one Key-Value key, for porcupine: a register with
// compare-and-swap on revisions. A revision is the bucket stream's sequence
// number, shared by every key, so a write's revision is not the key's
// previous one plus one; what the model holds a key to is that each write's
// revision exceeds the one before it on the key, that a read returns the
// value and revision of the latest write, and that a conditional write
// succeeds exactly when its expected revision is the key's current one.
//
// An operation whose outcome is unknown (ErrKVUnknownOutcome) is recorded as
// returning at the end of time: porcupine may then linearize it at any point
// after its call, which includes "after everything", where it changes
// nothing anyone saw; so the model applies it wherever it is placed. Its new
// revision is not known: the state then keeps only a lower bound, which the
// next read or conditional write pins down.

// kvValue is what the workload stores: a JSON object {"n": N, "tag": Tag}.
// Tags are unique per write of a new value; increments keep the tag.
type kvValue struct {
	N   int    `json:"n"`
	Tag string `json:"tag,omitempty"`
}

// The operations.
const (
	opGet       = "get"
	opPut       = "put"
	opCreate    = "create"
	opUpdate    = "update"    // Update(key, value, expected revision)
	opIncrement = "increment" // UpdateJSON(key, n = n+1)
)

// The outcomes of an operation.
const (
	resultOK       = "ok"
	resultNotFound = "not found" // a Get of a key that does not exist
	resultConflict = "conflict"  // refused: the key was not at the expected revision (or existed, for Create)
	resultFailed   = "failed"    // refused before it could take effect (any other error but an unknown outcome)
	// resultBusy is a conflict the server gave because another write to the
	// key was still in flight (error code 10164): not stored, but it says
	// nothing of where the key is. See busyRefusal.
	resultBusy    = "refused, key busy"
	resultUnknown = "unknown" // ErrKVUnknownOutcome: it may or may not have taken effect
)

// kvInput is an operation as invoked.
type kvInput struct {
	Op     string  `json:"op"`
	Key    string  `json:"key"`
	Value  kvValue `json:"value,omitzero"`  // put, create, update
	Expect uint64  `json:"expect,omitzero"` // update
}

// kvOutput is how it returned.
type kvOutput struct {
	Result string  `json:"result"`
	Value  kvValue `json:"value,omitzero"` // get
	Rev    uint64  `json:"rev,omitzero"`   // get, and writes that succeeded
	Err    string  `json:"err,omitempty"`
}

// kvState is one key. RevExact is false after a write whose revision is not
// known (an increment, which reports none, or an unknown outcome): the
// key's revision is then greater than Rev.
type kvState struct {
	Exists   bool
	Value    kvValue
	Rev      uint64
	RevExact bool
}

// at reports whether the key can be at revision rev.
func (s kvState) at(rev uint64) bool {
	if s.RevExact {
		return s.Rev == rev
	}
	return rev > s.Rev
}

// after reports whether rev can be a revision written after the key's.
func (s kvState) after(rev uint64) bool { return rev > s.Rev }

// written is the state after a write of v whose revision is rev (0: not known).
func (s kvState) written(v kvValue, rev uint64) kvState {
	if rev == 0 {
		return kvState{Exists: true, Value: v, Rev: s.Rev, RevExact: false}
	}
	return kvState{Exists: true, Value: v, Rev: rev, RevExact: true}
}

// kvStep is the model's transition: whether the operation can take effect
// on s with the output seen, and the state after it.
func kvStep(s kvState, in kvInput, out kvOutput) (bool, kvState) {
	switch out.Result {
	case resultFailed, resultBusy:
		return true, s // it did not take effect, and says nothing of the key
	case resultUnknown:
		return true, applyUnknown(s, in)
	}
	switch in.Op {
	case opGet:
		if out.Result == resultNotFound {
			return !s.Exists, s
		}
		if !s.Exists || s.Value != out.Value || !s.at(out.Rev) {
			return false, s
		}
		return true, kvState{Exists: true, Value: s.Value, Rev: out.Rev, RevExact: true}
	case opPut:
		return s.after(out.Rev), s.written(in.Value, out.Rev)
	case opCreate:
		if out.Result == resultConflict {
			return s.Exists, s
		}
		return !s.Exists && s.after(out.Rev), s.written(in.Value, out.Rev)
	case opUpdate:
		// Expecting revision 0 is expecting no message: a create.
		if out.Result == resultConflict {
			return !s.RevExact || s.Rev != in.Expect, s
		}
		return s.at(in.Expect) && out.Rev > in.Expect, s.written(in.Value, out.Rev)
	case opIncrement:
		if out.Result == resultConflict {
			return true, s // retries exhausted: never stored
		}
		return true, s.written(incremented(s), 0)
	}
	return false, s
}

// applyUnknown applies an operation of unknown outcome, where it can apply.
func applyUnknown(s kvState, in kvInput) kvState {
	switch in.Op {
	case opPut:
		return s.written(in.Value, 0)
	case opCreate:
		if !s.Exists {
			return s.written(in.Value, 0)
		}
	case opUpdate:
		if s.at(in.Expect) {
			return kvState{Exists: true, Value: in.Value, Rev: max(s.Rev, in.Expect), RevExact: false}
		}
	case opIncrement:
		return s.written(incremented(s), 0)
	}
	return s
}

// incremented is the value UpdateJSON's n+1 writes: on a missing key, an
// empty object gets n = 1 and no tag.
func incremented(s kvState) kvValue {
	if !s.Exists {
		return kvValue{N: 1}
	}
	return kvValue{N: s.Value.N + 1, Tag: s.Value.Tag}
}

// kvModel checks each key's history on its own.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, seen := byKey[k]; !seen {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		parts := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() any { return kvState{RevExact: true} },
	Step: func(state, input, output any) (bool, any) {
		return kvStep(state.(kvState), input.(kvInput), output.(kvOutput))
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		call := in.Op + "(" + in.Key
		switch in.Op {
		case opPut, opCreate:
			call += fmt.Sprintf(", %v", in.Value)
		case opUpdate:
			call += fmt.Sprintf(", %v, rev %d", in.Value, in.Expect)
		}
		ret := out.Result
		switch {
		case out.Result == resultOK && in.Op == opGet:
			ret = fmt.Sprintf("%v @%d", out.Value, out.Rev)
		case out.Result == resultOK && out.Rev != 0:
			ret = fmt.Sprintf("ok @%d", out.Rev)
		}
		return call + ") → " + ret
	},
	DescribeState: func(state any) string {
		s := state.(kvState)
		if !s.Exists {
			return fmt.Sprintf("absent (rev %s)", revText(s))
		}
		return fmt.Sprintf("%v @%s", s.Value, revText(s))
	},
}

func revText(s kvState) string {
	if s.RevExact {
		return fmt.Sprint(s.Rev)
	}
	return fmt.Sprintf(">%d", s.Rev)
}
