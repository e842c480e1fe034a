package natsclient

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
