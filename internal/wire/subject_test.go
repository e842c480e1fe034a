package wire

import "testing"

// plainSubject may only accept what explainSubject accepts, with and
// without wildcards; it may leave anything to explainSubject.
func FuzzPlainSubject(f *testing.F) {
	for _, s := range []string{
		"", "a", "a.b", "orders.eu-west.warehouse-17.shipped", "a..b", ".a", "a.", ".",
		"a b", "a\tb", "a\x00b", "a\x7fb", "a.*", "a.>", "*", ">", "a*b", "a>b", "a.>.b",
		"é.ü", "\xff.\x80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainSubject(s) {
			return
		}
		for _, wildcards := range []bool{false, true} {
			if err := explainSubject(s, wildcards); err != nil {
				t.Fatalf("plainSubject accepts %q, explainSubject (wildcards %t) refuses it: %v", s, wildcards, err)
			}
		}
	})
}

func TestPlainSubjectTakesTheCommonCase(t *testing.T) {
	for _, s := range []string{"a", "bench.publish", "orders.eu-west.warehouse-17.shipped", "a_b.c-d.0123", "é.ü"} {
		if !plainSubject(s) {
			t.Errorf("plainSubject(%q) = false: a plain subject takes the slow path", s)
		}
	}
	for _, s := range []string{"", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "a*b", "a\x7f"} {
		if plainSubject(s) {
			t.Errorf("plainSubject(%q) = true: explainSubject must decide", s)
		}
	}
}

// The control-line check counts the line nats.go writes, byte for byte; with
// headers the header size and the total are counted at the width of the
// largest max_payload (an int32), their upper bound, and a subscription ID
// at the width of the largest uint64.
func TestProtocolLineLengths(t *testing.T) {
	for _, tc := range []struct {
		got  int
		line string
	}{
		{PubLineLen("a.b", "", 5, false), "PUB a.b 5\r\n"},
		{PubLineLen("a.b", "_INBOX.x", 12345, false), "PUB a.b _INBOX.x 12345\r\n"},
		{PubLineLen("a.b", "", 0, false), "PUB a.b 0\r\n"},
		{PubLineLen("a.b", "r", 10, true), "HPUB a.b r 2147483647 2147483647\r\n"},
		{PubLineLen("a.b", "", 0, true), "HPUB a.b 2147483647 2147483647\r\n"},
		{SubLineLen("a.>", ""), "SUB a.> 18446744073709551615\r\n"},
		{SubLineLen("a.>", "q"), "SUB a.> q 18446744073709551615\r\n"},
	} {
		if tc.got != len(tc.line) {
			t.Errorf("%q: counted %d bytes, the line has %d", tc.line, tc.got, len(tc.line))
		}
	}
	if err := CheckLine("a", "PUB", MaxControlLine); err != nil {
		t.Errorf("a line of exactly MaxControlLine bytes refused: %v", err)
	}
	if err := CheckLine("a", "PUB", MaxControlLine+1); err == nil {
		t.Error("a line one byte over MaxControlLine accepted")
	}
}
