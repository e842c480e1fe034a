package natsclient

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nats://alice:secret@host:4222", "nats://alice:xxxxx@host:4222"},
		{"nats://s3cr3t-token@host", "nats://xxxxx@host"},
		{"tls://alice:p%40ss@host", "tls://alice:xxxxx@host"},
		// net/url would parse these as something else and show the secret.
		{"nats://alice:pa#ss@host:4222", "nats://alice:xxxxx@host:4222"},
		{"nats://alice:pa/ss@host:4222", "nats://alice:xxxxx@host:4222"},
		{"nats://tok?en@host", "nats://xxxxx@host"},
		{"alice:secret@host:4222", "alice:xxxxx@host:4222"},
		{"nats://host:4222", "nats://host:4222"},
		{"host", "host"},
		{"", ""},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := RedactURL(c.in); got != c.want {
				t.Fatalf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestRedactServers(t *testing.T) {
	servers := []string{"nats://a:pw1@h1:4222", "nats://tok@h2:4222", "nats://h3:4222"}
	want := "[nats://a:xxxxx@h1:4222 nats://xxxxx@h2:4222 nats://h3:4222]"
	if got := redactServers(servers); got != want {
		t.Fatalf("redactServers = %q, want %q", got, want)
	}
	if got := redactServers(servers[:1]); got != "nats://a:xxxxx@h1:4222" {
		t.Fatalf("redactServers of one = %q", got)
	}
}

func TestRedactError(t *testing.T) {
	servers := []string{"nats://alice:secret@host:4222", "nats://tok3n@other:4222"}
	cause := errors.New("cause")
	leaky := fmt.Errorf("dial nats://alice:secret@host:4222 and tok3n@other: %w", cause)
	got := redactError(leaky, servers)
	for _, secret := range []string{"secret", "tok3n"} {
		if strings.Contains(got.Error(), secret) {
			t.Fatalf("redacted error still holds %q: %v", secret, got)
		}
	}
	if want := "dial nats://alice:xxxxx@host:4222 and xxxxx@other: cause"; got.Error() != want {
		t.Fatalf("redacted error = %q, want %q", got, want)
	}
	if !errors.Is(got, cause) {
		t.Fatal("redacted error no longer matches its cause")
	}
	clean := errors.New("dial tcp 127.0.0.1:4222: connection refused")
	if redactError(clean, servers) != clean {
		t.Fatal("an error without secrets was wrapped")
	}
	if redactError(nil, servers) != nil {
		t.Fatal("nil error became non-nil")
	}
}

// A URL that does not parse is refused by NewClient without being repeated:
// net/url's error would quote it, password included.
func TestNewClientRefusesUnparsableURLWithoutShowingIt(t *testing.T) {
	for _, url := range []string{
		"nats://alice:pa ss@host:4222",
		"nats://127.0.0.1:4222,nats://alice:se%zzcret@host:4222",
		"nats://alice:pa,ss@host:4222", // the comma splits it into two
	} {
		t.Run(url, func(t *testing.T) {
			_, err := NewClient(url)
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("NewClient(%q) = %v, want ErrInvalidOption", url, err)
			}
			for _, secret := range []string{"pa ss", "se%zzcret", "alice:pa"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the password: %v", err)
				}
			}
		})
	}
}

func TestClientPrintsRedacted(t *testing.T) {
	c, err := NewClient("nats://alice:secret@host:4222, nats://tok3n@other:4222")
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		got := fmt.Sprintf(verb, c)
		if strings.Contains(got, "secret") || strings.Contains(got, "tok3n") {
			t.Errorf("Sprintf(%q, client) = %s", verb, got)
		}
	}
	if got, want := c.String(), "natsclient.Client([nats://alice:xxxxx@host:4222 nats://xxxxx@other:4222])"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
