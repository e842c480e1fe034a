package reliability_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The subject fuzz targets check natsclient.ValidateSubject and
// ValidateSubscribeSubject against nats-server: they never panic; what they
// accept, the server's own rules accept and a real server takes (a round
// trip through an embedded server in pedantic mode, which answers a subject
// it finds invalid with -ERR); what they refuse is refused with an error
// naming the subject, and only for a reason the server shares or for
// whitespace and control bytes, which the client refuses on purpose.
//
// Seeds are in testdata/fuzz/<target>; .ci/fuzz runs each target briefly.

func FuzzValidateSubject(f *testing.F) {
	for _, s := range subjectSeeds {
		f.Add(s)
	}
	rt := newSubjectRoundTrip(f)
	f.Fuzz(func(t *testing.T, subject string) {
		err := natsclient.ValidateSubject(subject)
		if err != nil {
			checkRefusal(t, "ValidateSubject", subject, err)
			if server.IsValidPublishSubject(subject) && !hasControlByte(subject) && !overControlLine(subject) {
				t.Fatalf("ValidateSubject(%q) = %v, but the server takes it as a subject to publish to", subject, err)
			}
			return
		}
		if !server.IsValidPublishSubject(subject) {
			t.Fatalf("ValidateSubject accepts %q, which the server does not take as a subject to publish to", subject)
		}
		if err := natsclient.ValidateSubscribeSubject(subject); err != nil {
			t.Fatalf("ValidateSubject accepts %q, ValidateSubscribeSubject refuses it: %v", subject, err)
		}
		rt.check(t, subject, subject)
	})
}

func FuzzValidateSubscribeSubject(f *testing.F) {
	for _, s := range subjectSeeds {
		f.Add(s)
	}
	rt := newSubjectRoundTrip(f)
	f.Fuzz(func(t *testing.T, subject string) {
		err := natsclient.ValidateSubscribeSubject(subject)
		if err != nil {
			checkRefusal(t, "ValidateSubscribeSubject", subject, err)
			if server.IsValidSubject(subject) && !hasControlByte(subject) && !overControlLine(subject) {
				t.Fatalf("ValidateSubscribeSubject(%q) = %v, but the server takes it as a subscription", subject, err)
			}
			return
		}
		if !server.IsValidSubject(subject) {
			t.Fatalf("ValidateSubscribeSubject accepts %q, which the server does not take as a subscription", subject)
		}
		literal := matchingLiteral(subject)
		if err := natsclient.ValidateSubject(literal); err != nil {
			t.Fatalf("%q, made from the accepted %q by filling its wildcards, is refused: %v", literal, subject, err)
		}
		rt.check(t, subject, literal)
	})
}

// subjectSeeds are the in-code seeds; testdata/fuzz holds more.
var subjectSeeds = []string{
	"a", "orders.eu.new", "a.*", "a.>", "*", ">", "a.*.b", "a.>.b", "", ".", "a..b", ".a", "a.",
	"a b", "a\tb", "a\r\nPUB x 1", "a\x00b", "a\x7f", "é.ü", "\xff.\x80", "a*b", "a>b", "$JS.API.INFO", "_INBOX.x",
}

// checkRefusal checks that a refusal is a caller's-mistake error naming the
// subject.
func checkRefusal(t *testing.T, fn, subject string, err error) {
	t.Helper()
	if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, nats.ErrBadSubject) {
		t.Fatalf("%s(%q) = %v, want ErrInvalidArgument and nats.ErrBadSubject", fn, subject, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", subject)) {
		t.Fatalf("%s(%q) = %v: the error does not name the subject", fn, subject, err)
	}
}

// overControlLine reports whether s is too long for a protocol line within
// the server's default max_control_line, which the client refuses although
// the server's subject rules take it (the server closes the connection).
func overControlLine(s string) bool {
	return len("SUB ")+len(s)+len(" 1\r\n") > natsclient.MaxControlLine
}

// hasControlByte reports whether s holds whitespace or a control byte, which
// the client refuses although the server lets some of them through.
func hasControlByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// matchingLiteral fills the wildcards of a subscription subject to make a
// subject it matches.
func matchingLiteral(subject string) string {
	tokens := strings.Split(subject, ".")
	for i, tok := range tokens {
		if tok == "*" || tok == ">" {
			tokens[i] = "w"
		}
	}
	return strings.Join(tokens, ".")
}

// maxRoundTripSubject bounds the subjects sent to the server: a PUB line
// longer than the server's max_control_line (4KB by default) is refused for
// its length, which ValidateSubject leaves to the server.
const maxRoundTripSubject = 1024

// subjectRoundTrip subscribes and publishes on an embedded server through
// two pedantic connections, which make the server check every subject.
type subjectRoundTrip struct {
	pub, sub *nats.Conn
}

func newSubjectRoundTrip(f *testing.F) *subjectRoundTrip {
	srv := natstest.NewServer(f)
	pedantic := func(o *nats.Options) error {
		o.Pedantic = true
		o.SkipSubjectValidation = true // the server decides, not nats.go
		return nil
	}
	rt := &subjectRoundTrip{}
	for _, nc := range []**nats.Conn{&rt.pub, &rt.sub} {
		conn, err := nats.Connect(srv.URL(), pedantic, nats.MaxReconnects(0))
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(conn.Close)
		*nc = conn
	}
	return rt
}

// check subscribes to subscription, publishes to literal, which it matches,
// and expects the message back.
func (rt *subjectRoundTrip) check(t *testing.T, subscription, literal string) {
	t.Helper()
	if len(subscription) > maxRoundTripSubject || len(literal) > maxRoundTripSubject {
		return
	}
	sub, err := rt.sub.SubscribeSync(subscription)
	if err != nil {
		t.Fatalf("subscribe %q: %v", subscription, err)
	}
	defer sub.Unsubscribe()
	if err := rt.sub.Flush(); err != nil {
		t.Fatalf("subscribe %q: the server refused it: %v (%v)", subscription, err, rt.sub.LastError())
	}
	if err := rt.pub.Publish(literal, []byte("x")); err != nil {
		t.Fatalf("publish %q: %v", literal, err)
	}
	if err := rt.pub.Flush(); err != nil {
		t.Fatalf("publish %q: the server refused it: %v (%v)", literal, err, rt.pub.LastError())
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("subscription %q got nothing published to %q: %v (server said: %v, %v)",
			subscription, literal, err, rt.sub.LastError(), rt.pub.LastError())
	}
	if m.Subject != literal {
		t.Fatalf("subscription %q got a message on %q, want %q", subscription, m.Subject, literal)
	}
}
