package natsclient

import (
	"slices"
	"strings"
)

// Redaction: the user info of a NATS URL is a secret ("user:password@", or a
// bare "token@"), and URLs are how NATS is usually configured. The rule is
// that nothing the client produces holds one verbatim: every URL the client
// formats anywhere (log lines, errors, state events, stats, and whatever is
// added later: span attributes, metric labels, outbox records, the demo's
// output) goes through RedactURL (redactServers for the client's list), and
// every error whose text might hold a server URL goes through redactError.
// Add a new output, call these; do not format a server URL any other way.

// redactedSecret replaces a secret, as net/url's URL.Redacted does.
const redactedSecret = "xxxxx"

// RedactURL returns raw with its user info masked: "nats://alice:secret@host"
// becomes "nats://alice:xxxxx@host", like url.URL.Redacted, and a token-only
// "nats://s3cr3t@host" becomes "nats://xxxxx@host". It does not rely on
// net/url, which parses a password holding '#', '?' or '/' into some other
// part of the URL: everything between the scheme and the last '@' is user
// info here. Masking too much is harmless; masking too little is a leak.
// The client applies it to every URL it shows; use it to show a server URL
// from your own configuration.
func RedactURL(raw string) string {
	scheme, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+len("://")], raw[i+len("://"):]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	userinfo, host := rest[:at], rest[at+1:]
	if user, _, hasPassword := strings.Cut(userinfo, ":"); hasPassword {
		return scheme + user + ":" + redactedSecret + "@" + host
	}
	return scheme + redactedSecret + "@" + host
}

// redactServers formats the client's server list for a log line or an
// error: the one URL, or all of them in brackets, each redacted.
func redactServers(servers []string) string {
	if len(servers) == 1 {
		return RedactURL(servers[0])
	}
	shown := make([]string, len(servers))
	for i, s := range servers {
		shown[i] = RedactURL(s)
	}
	return "[" + strings.Join(shown, " ") + "]"
}

// userInfoOf returns the user info of a server URL as written, with its '@',
// or "" when it has none.
func userInfoOf(raw string) string {
	rest := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		rest = raw[i+len("://"):]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	return rest[:at+1]
}

// redactError returns err unchanged when its text holds none of the
// servers' user info, and otherwise an error whose text has each URL
// redacted and which still unwraps to err, so errors.Is and errors.As match
// as before. nats.go does not put a URL into the errors it returns once a
// URL has parsed (NewClient refuses one that does not), so this is a
// safeguard for what a later nats.go version might do, not a known path.
func redactError(err error, servers []string) error {
	if err == nil || !slices.ContainsFunc(servers, func(s string) bool { return userInfoOf(s) != "" }) {
		return err // nothing to mask: the error's text is not even built
	}
	text := err.Error()
	scrubbed := text
	for _, s := range servers {
		if userinfo := userInfoOf(s); userinfo != "" {
			scrubbed = strings.ReplaceAll(scrubbed, s, RedactURL(s))
			scrubbed = strings.ReplaceAll(scrubbed, userinfo, RedactURL(userinfo))
		}
	}
	if scrubbed == text {
		return err
	}
	return &redactedError{text: scrubbed, err: err}
}

// redactedError is an error whose text had a secret masked.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

// String describes the client by its servers, redacted, so that a client
// printed with %v or %+v does not show the user info in its URLs.
func (c *Client) String() string { return "natsclient.Client(" + redactServers(c.sup.servers) + ")" }

// GoString is String, for %#v.
func (c *Client) GoString() string { return c.String() }
