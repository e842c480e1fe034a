package outbox_test

import (
	"log"
	"log/slog"
	"strings"
	"testing"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/c360/natsclient/testing/natstest"
)

// An outbox opened without WithLogger logs where its client logs, not to
// slog.Default(): to the client's WithSlog logger, and to its Printf
// WithLogger as lines. A client with neither leaves it to slog.Default().
func TestOutboxLogsToTheClientsLogger(t *testing.T) {
	for name, clientOpt := range map[string]func(lines *lineSink) natsclient.Option{
		"WithSlog":   func(l *lineSink) natsclient.Option { return natsclient.WithSlog(slog.New(slog.NewTextHandler(l, nil))) },
		"WithLogger": func(l *lineSink) natsclient.Option { return natsclient.WithLogger(log.New(l, "", 0)) },
		"neither":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			clientLines, defaultLines := newLineSink(), newLineSink()
			prev := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(defaultLines, nil)))
			t.Cleanup(func() { slog.SetDefault(prev) })

			var opts []natsclient.Option
			want, other := clientLines, defaultLines // where the outbox's records must go, and must not
			if clientOpt != nil {
				opts = append(opts, clientOpt(clientLines))
			} else {
				want, other = defaultLines, clientLines
			}
			tc := natstest.NewTestClient(t, natstest.WithJetStream(), natstest.WithClientOptions(opts...))
			ob, err := outbox.Open(tc.Client, outboxPath(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeOutbox(t, ob) })
			// No stream captures the subject on a plain server: a dead
			// letter, which the outbox logs at Warn.
			if _, err := ob.Publish(natstest.Context(t, testTimeout), "nostream.x", []byte("x")); err != nil {
				t.Fatal(err)
			}
			flush(t, ob)
			natstest.Await(t, want.ch, waitTimeout, "record of the dead letter on the expected logger", func(line string) bool {
				return strings.Contains(line, "moved to the dead letters") && strings.Contains(line, "outbox=")
			})
			select {
			case line := <-other.ch:
				t.Errorf("another logger got an outbox record: %s", line)
			default:
			}
		})
	}
}

// lineSink is an io.Writer whose writes arrive on a channel, one per log
// record; records that find it full are dropped.
type lineSink struct{ ch chan string }

func newLineSink() *lineSink { return &lineSink{ch: make(chan string, 1024)} }

func (l *lineSink) Write(p []byte) (int, error) {
	select {
	case l.ch <- string(p):
	default:
	}
	return len(p), nil
}
