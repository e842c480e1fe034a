package natsclient

import (
	"context"
	"errors"
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

// Slog returns a logger that writes where the client's own records go, so
// that code built on the client (the outbox) logs beside it: the logger
// given with WithSlog; with WithLogger, that Logger as well, one line per
// record ("natsclient: msg key=value ...") at every level, as the client's
// own records. It returns nil when the client was given neither.
func (c *Client) Slog() *slog.Logger {
	o := &c.opts
	switch {
	case o.logger == nil:
		return o.slog // nil when neither
	case o.slog == nil:
		return slog.New(lineHandler{out: o.logger})
	default:
		return slog.New(fanout{o.slog.Handler(), lineHandler{out: o.logger}})
	}
}

// lineHandler writes records to a Printf Logger as the client's log does:
// "natsclient: msg key=value ...".
type lineHandler struct {
	out    Logger
	prefix string // the groups opened by WithGroup, "a.b."
	attrs  string // " key=value" for each attribute given by WithAttrs
}

func (h lineHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.prefix, a)
		return true
	})
	h.out.Printf("natsclient: %s", b.String())
	return nil
}

func (h lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, h.prefix, a)
	}
	h.attrs = b.String()
	return h
}

func (h lineHandler) WithGroup(name string) slog.Handler {
	if name != "" {
		h.prefix += name + "."
	}
	return h
}

// writeAttr writes " key=value", a group's members each under its name.
func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			writeAttr(b, prefix, m)
		}
		return
	}
	if a.Equal(slog.Attr{}) {
		return
	}
	fmt.Fprintf(b, " %s%s=%v", prefix, a.Key, a.Value)
}

// fanout sends each record to two handlers: the client's slog logger and its
// Printf Logger.
type fanout [2]slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	return f[0].Enabled(ctx, l) || f[1].Enabled(ctx, l)
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	return fanout{f[0].WithAttrs(attrs), f[1].WithAttrs(attrs)}
}

func (f fanout) WithGroup(name string) slog.Handler {
	return fanout{f[0].WithGroup(name), f[1].WithGroup(name)}
}
