package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/c360/natsclient/testing/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The demo shows the server it was given, and every error, without the
// password or token in the URL: run against a server that refuses the
// credentials and against one that is down.
func TestDemoOutputHoldsNoSecret(t *testing.T) {
	const password, token = "demo-pass-5bd1e3", "demo-token-77c0aa"
	withPassword := natstest.NewServer(t, natstest.WithServerOptions(func(o *server.Options) {
		o.Username, o.Password = "alice", "the-right-one"
	}))
	withToken := natstest.NewServer(t, natstest.WithServerOptions(func(o *server.Options) {
		o.Authorization = "the-right-token"
	}))
	down := deadAddress(t)
	for _, c := range []struct {
		name, url, secret string
	}{
		{"wrong password", userInfo(withPassword.URL(), "alice:"+password), password},
		{"wrong token", userInfo(withToken.URL(), token), token},
		{"server down", "nats://alice:" + password + "@" + down, password},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			d := &demo{start: time.Now(), wait: 2 * time.Second, out: &out}
			err := d.run(c.url)
			if err == nil {
				t.Fatalf("the demo succeeded against %s", c.name)
			}
			d.say("error", "%v", err) // as main does
			if strings.Contains(out.String(), c.secret) {
				t.Fatalf("the demo's output shows the secret:\n%s", out.String())
			}
			if !strings.Contains(out.String(), "xxxxx@") {
				t.Fatalf("the demo's output does not show the redacted URL:\n%s", out.String())
			}
			t.Logf("demo output:\n%s", out.String())
		})
	}
}

func userInfo(url, userinfo string) string {
	return strings.Replace(url, "://", "://"+userinfo+"@", 1)
}

func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The -edge story runs from start to end on its own embedded hub and leaf:
// local traffic and mirror reads through the cut link, hub-bound writes
// failing fast with ErrUnreachable, and recovery.
func TestDemoEdge(t *testing.T) {
	var out bytes.Buffer
	d := &demo{start: time.Now(), wait: 20 * time.Second, out: &out}
	if err := d.runEdge(); err != nil {
		t.Fatalf("edge demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"published and received at the site", "local stream SITE stored",
		`mirror says greeting = "hello"`, "cannot be reached", "still closed", `mirror says greeting = "welcome back"`, "breaker trips=0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("edge demo output lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("demo output:\n%s", out.String())
}
