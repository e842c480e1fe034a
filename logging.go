package natsclient

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// WithSlog sends the client's log records to l as structured records: Debug
// for each dial attempt and each resend, Info for state changes and the
// breaker closing, Warn for the breaker opening, a write whose outcome is
// unknown and a consumer in trouble, Error for a permanent failure. Records
// carry attributes (state, breaker, server, attempt, err, and bucket/key
// for KV) rather than formatted text; subjects appear only at Debug, as they
// often carry identifiers. Server URLs are redacted (see RedactURL). A nil
// logger is an error. WithSlog and WithLogger may be combined: both receive
// every record.
func WithSlog(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return invalidOption("WithSlog", "nil *slog.Logger")
		}
		o.slog = l
		return nil
	}
}

// log emits one record at level. For a Printf Logger the record becomes one
// line, "natsclient: msg key=value ...", as the seed's logger had it.
// logs reports whether a record at level would be written anywhere, so
// that a frequent record's attributes are built only when it would be.
func (o *options) logs(level slog.Level) bool {
	return o.logger != nil || o.slog != nil && o.slog.Enabled(context.Background(), level)
}

func (o *options) log(level slog.Level, msg string, attrs ...slog.Attr) {
	if o.slog != nil {
		o.slog.LogAttrs(context.Background(), level, msg, attrs...)
	}
	if o.logger != nil {
		var b strings.Builder
		b.WriteString(msg)
		for _, a := range attrs {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		o.logger.Printf("natsclient: %s", b.String())
	}
}

// Attribute constructors shared by the log calls, so that the same thing
// has the same key everywhere.
func errAttr(err error) slog.Attr          { return slog.Any("err", err) }
func stateAttr(s State) slog.Attr          { return slog.String("state", s.String()) }
func breakerAttr(b BreakerState) slog.Attr { return slog.String("breaker", b.String()) }
func attemptAttr(n int) slog.Attr          { return slog.Int("attempt", n) }
