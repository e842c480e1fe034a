package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/c360/natsclient"
	"github.com/c360/natsclient/outbox"
	"github.com/nats-io/nats.go/jetstream"
)

// The store-and-forward part of the story: publishes made while the server is
// down wait in an outbox file, and arrive in the stream, in order, once the
// server is back. It needs JetStream; against a -server without it, this
// part is left out and says so.

const (
	outboxStream  = "DEMO"
	outboxSubject = "demo.outbox.readings"
	outboxQueued  = 3
)

type outboxPart struct {
	ob   *outbox.Outbox
	dir  string
	sent []queued
}

type queued struct{ id, data string }

// openOutbox creates the stream and opens an outbox in a temporary
// directory. It returns nil, and no error, when the server has no JetStream.
func (d *demo) openOutbox(ctx context.Context, client *natsclient.Client) (*outboxPart, error) {
	cfg := jetstream.StreamConfig{Name: outboxStream, Subjects: []string{"demo.outbox.>"}}
	if _, err := client.CreateStream(ctx, cfg); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			d.say("outbox", "left out: the server has no JetStream")
			return nil, nil
		}
		return nil, fmt.Errorf("create stream %s: %w", outboxStream, err)
	}
	dir, err := os.MkdirTemp("", "natsclient-demo-outbox-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "outbox.db")
	ob, err := outbox.Open(client, path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.say("outbox", "opened %s, forwarding to stream %s", path, outboxStream)
	return &outboxPart{ob: ob, dir: dir}, nil
}

func (o *outboxPart) close(ctx context.Context) {
	if o == nil {
		return
	}
	_ = o.ob.Close(ctx)
	os.RemoveAll(o.dir)
}

// queue publishes through the outbox while the server is down: each call
// returns once the message is on disk.
func (d *demo) queue(ctx context.Context, o *outboxPart) error {
	if o == nil {
		return nil
	}
	for i := range outboxQueued {
		data := fmt.Sprintf("queued %d", i+1)
		t0 := time.Now()
		id, err := o.ob.Publish(ctx, outboxSubject, []byte(data))
		if err != nil {
			return fmt.Errorf("outbox publish %q: %w", data, err)
		}
		d.say("outbox", "stored %q as %s in %v, server down", data, id, time.Since(t0).Round(time.Microsecond))
		o.sent = append(o.sent, queued{id: id, data: data})
	}
	st := o.ob.Stats()
	d.say("outbox", "%d pending (%d bytes), oldest from %s", st.Pending, st.PendingBytes, st.Oldest.Format(time.TimeOnly))
	return nil
}

// delivered waits for the outbox to drain and reads the stream back: the
// queued messages, in order, each once, each with its outbox id.
func (d *demo) delivered(ctx context.Context, client *natsclient.Client, o *outboxPart) error {
	if o == nil {
		return nil
	}
	flushCtx, cancel := context.WithTimeout(ctx, d.wait)
	defer cancel()
	if err := o.ob.Flush(flushCtx); err != nil {
		return fmt.Errorf("outbox flush: %w", err)
	}
	s, err := client.Stream(flushCtx, outboxStream)
	if err != nil {
		return err
	}
	info, err := s.Info(flushCtx)
	if err != nil {
		return err
	}
	if got := int(info.State.Msgs); got != len(o.sent) {
		return fmt.Errorf("stream %s holds %d messages, want the %d queued", outboxStream, got, len(o.sent))
	}
	for i, want := range o.sent {
		m, err := s.GetMsg(flushCtx, uint64(i+1))
		if err != nil {
			return fmt.Errorf("stream %s message %d: %w", outboxStream, i+1, err)
		}
		if string(m.Data) != want.data || m.Header.Get(jetstream.MsgIDHeader) != want.id {
			return fmt.Errorf("stream %s message %d is %q (id %s), want %q (id %s)",
				outboxStream, i+1, m.Data, m.Header.Get(jetstream.MsgIDHeader), want.data, want.id)
		}
		d.say("stream", "#%d %q (id %s)", i+1, m.Data, want.id)
	}
	d.say("outbox", "the %d messages published during the outage arrived in order, once each", len(o.sent))
	return nil
}
