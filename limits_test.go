package natsclient_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats.go"
)

// longSubject returns a valid subject of n bytes.
func longSubject(n int) string {
	s := strings.Repeat("a.", n/2+1)[:n]
	if strings.HasSuffix(s, ".") {
		s = s[:n-1] + "b"
	}
	return s
}

// A subject too long for the server's protocol line is refused by the
// client, naming the limit, and costs no connection (defect 1a): before,
// the server closed the connection on it and the client resubscribed it on
// every new connection.
func TestSubjectOverTheControlLineIsRefused(t *testing.T) {
	tc := natstest.NewTestClient(t)
	c, ctx := tc.Client, natstest.Context(t, waitTimeout)
	huge := longSubject(5000)
	handler := func(*nats.Msg) {}
	checks := map[string]error{
		"ValidateSubject":          natsclient.ValidateSubject(huge),
		"ValidateSubscribeSubject": natsclient.ValidateSubscribeSubject(huge),
		"Publish":                  c.Publish(ctx, huge, []byte("x")),
		"PublishMsg":               c.PublishMsg(ctx, &nats.Msg{Subject: huge, Data: []byte("x")}),
	}
	_, checks["Subscribe"] = c.Subscribe(huge, handler)
	_, checks["QueueSubscribe"] = c.QueueSubscribe(huge, "workers", handler)
	_, checks["Request"] = c.Request(ctx, huge, nil)
	for name, err := range checks {
		t.Run(name, func(t *testing.T) {
			if !errors.Is(err, natsclient.ErrInvalidArgument) || !errors.Is(err, nats.ErrBadSubject) {
				t.Fatalf("%s with a 5000-byte subject = %v, want ErrInvalidArgument and nats.ErrBadSubject", name, err)
			}
			if !strings.Contains(err.Error(), "4096") || !strings.Contains(err.Error(), "control-line") {
				t.Fatalf("%s: %v: the error does not name the 4096-byte control-line limit", name, err)
			}
		})
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush after the refused calls: %v", err)
	}
	if st := c.Stats(); st.Connections != 1 || st.Reconnects != 0 || st.ConsecutiveFailures != 0 {
		t.Fatalf("the refused calls cost the connection: %+v", st)
	}
}

// The limit is the server's and no stricter than it needs to be: the
// longest subject the client accepts for a subscription is subscribed and
// published to on a real server, without losing the connection; one byte
// more is refused.
func TestLongestAcceptedSubjectWorks(t *testing.T) {
	tc := natstest.NewTestClient(t)
	c, ctx := tc.Client, natstest.Context(t, waitTimeout)
	// SUB <subject> <sid>\r\n, counting the widest sid (20 digits).
	longest := natsclient.MaxControlLine - len("SUB ") - len(" ") - 20 - len("\r\n")
	if _, err := c.Subscribe(longSubject(longest+1), func(*nats.Msg) {}); !errors.Is(err, natsclient.ErrInvalidArgument) {
		t.Fatalf("Subscribe one byte over the limit = %v, want ErrInvalidArgument", err)
	}
	subject := longSubject(longest)
	got := make(chan *nats.Msg, 1)
	if _, err := c.Subscribe(subject, func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatalf("Subscribe at the limit: %v", err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := c.Publish(ctx, subject, []byte("edge")); err != nil {
		t.Fatalf("Publish at the limit: %v", err)
	}
	if m := natstest.Receive(t, got, waitTimeout, "message on the longest subject"); string(m.Data) != "edge" {
		t.Fatalf("got %q", m.Data)
	}
	if st := c.Stats(); st.Connections != 1 || st.Reconnects != 0 {
		t.Fatalf("the server closed the connection: %+v", st)
	}
}

// A malformed server URL is NewClient's error, naming the URL, never its
// password (defect 6); before, Connect retried it until its context ended.
func TestMalformedURLIsInvalidOption(t *testing.T) {
	for _, url := range []string{
		"::::not a url",
		"http://host:4222",
		"nats://host:99999",
		"nats://host:port",
		"nats://:4222",
		"nats://user:hunter2@host:4222/%zz",
		"nats://127.0.0.1:4222, http://other:4222",
	} {
		t.Run(url, func(t *testing.T) {
			_, err := natsclient.NewClient(url)
			if !errors.Is(err, natsclient.ErrInvalidOption) {
				t.Fatalf("NewClient(%q) = %v, want ErrInvalidOption", url, err)
			}
			if !strings.Contains(err.Error(), "url") {
				t.Fatalf("NewClient(%q) = %v: does not say the URL is wrong", url, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("NewClient(%q) = %v: the error shows the password", url, err)
			}
		})
	}
}

// Every form nats.go dials is still taken, and a URL without a scheme
// reaches a real server.
func TestServerURLFormsAccepted(t *testing.T) {
	for _, url := range []string{
		"localhost", "127.0.0.1:4222", "nats://u:p@host:4222", "tls://host", "ws://host:80",
		"wss://host", "[::1]:4222", "nats://a:4222, nats://b:4222",
	} {
		if _, err := natsclient.NewClient(url); err != nil {
			t.Errorf("NewClient(%q) = %v", url, err)
		}
	}
	srv := natstest.NewServer(t)
	bare := strings.TrimPrefix(srv.URL(), "nats://")
	c := newClient(t, bare, fast()...)
	if err := c.Connect(natstest.Context(t, waitTimeout)); err != nil {
		t.Fatalf("Connect to %q: %v", bare, err)
	}
}
