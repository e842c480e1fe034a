// Package outbox is a durable store-and-forward queue for JetStream
// publishes: Publish writes the message to a local file and returns once it
// is on disk, and a forwarder sends the queue to the server, in order, while
// the client is connected.
//
// Use it where a publish must not be lost to an outage or a restart: at the
// edge, where the uplink goes away for minutes or hours and the process may
// restart meanwhile. natsclient.Client.PublishToStream fails fast with
// ErrCircuitOpen while the breaker is open, and nats.go's reconnect buffer is
// in memory (and core NATS only); the outbox keeps the message on disk until
// its stream has acknowledged it.
//
//	ob, err := outbox.Open(client, "/var/lib/sensor/outbox.db",
//		outbox.WithMaxBytes(256<<20)) // disk budget of the pending messages
//	if err != nil {
//		return err // held by another process, or not an outbox file: the error names the path
//	}
//	defer ob.Close(ctx) // pending messages stay in the file for the next Open
//
//	id, err := ob.Publish(ctx, "telemetry.site1.temp", reading)
//	switch {
//	case errors.Is(err, outbox.ErrFull): // over budget (WithOverflow(outbox.Reject), the default)
//	case errors.Is(err, natsclient.ErrInvalidArgument): // a bad subject: not stored
//	case err != nil: // the disk failed
//	}
//
// id is the message's Nats-Msg-Id. Flush(ctx) waits until everything
// published so far is acknowledged; Stats says what is pending, forwarded,
// dead-lettered, dropped and resent.
//
// # Exactly once, in order
//
// A Publish that returned nil reaches its stream once, in the order of the
// Publish calls that returned: across lost connections, server restarts and
// kills of the process. Each message carries a Nats-Msg-Id (the id Publish
// returns) that stays the same on every resend, and the stream's duplicate
// window drops the copies. The guarantee ends at that window (two minutes by
// default): a message whose acknowledgement was lost, and which is sent
// again only after the window has passed (a process killed with messages on
// the wire and restarted later than that), may be stored twice.
// Stats.ResentLate counts such resends. Messages of concurrent Publish calls
// are in the order their calls were stored.
//
// Order is kept by resending, after any missing acknowledgement, the whole
// window from the first unacknowledged message (see docs/design.md,
// "Store-and-forward"), never one message behind later ones, and by
// forwarding on a connection of the outbox's own that never reconnects and
// never buffers: what was written to a lost connection cannot reach the
// server later, ahead of the resend. Order is strict with the client's
// options as they are, nats.go's reconnect buffer included (it stays on
// for the client's own publishes). A replicated stream that loses a message
// in a leader change and stores the next can still reorder: exactly once
// holds there, order may not.
//
// # Forwarding
//
// Forwarding starts by itself when the client connects and pauses while the
// client is disconnected or its breaker open (it follows StateChanges). It
// publishes on a connection it dials itself (natsclient.Client.DialConnContext,
// the client's servers and settings), kept while the client is connected
// and dialled again after a fault: one more connection to the server per
// open outbox (count it against the server's max_connections). The client's
// own connection keeps nats.go's reconnect buffer for your publishes. Up to
// WithMaxInFlight (256) publishes are on the wire at once, each waited for up
// to WithAckTimeout (5s); an acknowledged message is deleted from the file.
// The queue is read from the file a window at a time, so memory does not grow
// with the backlog.
//
// # Dead letters
//
// A message the server refuses for good (no stream captures its subject; it
// is larger than the stream allows; the stream is full and discards new
// messages; an expected-* header of its own fails) is moved to the dead
// letters after its first refusal, logged and counted, and forwarding goes
// on with the next message. "Nobody answered" (no responders, a timeout) is
// never a refusal by itself: "no stream captures the subject" is final only
// when the server's JetStream has no domain, and so is the only JetStream in
// reach. On a leaf node whose JetStream has a domain of its own, a stream on
// the hub cannot be reached while the leaf's link is down: forwarding waits,
// retrying with backoff as after a lost connection, the head of the queue in
// place, and Stats.Waiting says so (Stats.LastError matches
// natsclient.ErrUnreachable). Give every JetStream joined by leaf node links
// a domain: a leaf running JetStream under a hub without a domain (or the
// reverse) looks like the only JetStream there, and a message for a stream
// on the other side is dead-lettered while the link is down. DeadLetters
// lists them, Requeue puts one back at the end of the queue with its id,
// Discard deletes it. Refusals are told from transient failures by the
// server's error codes, never by text.
//
// # Storage
//
// The file is a bbolt database (go.etcd.io/bbolt): concurrent Publish calls
// share one commit and one fsync (bbolt's Batch). One process opens a file at
// a time: a file held by another process is an error within about a second,
// a second Open in the same process (by any path: symbolic links are
// resolved) an error at once. A file that is not an outbox is an error
// naming it, and is never rewritten or deleted. WithMaxBytes bounds the
// pending messages' stored size; at the bound, WithOverflow says whether
// Publish refuses (Reject, the default: ErrFull) or the oldest messages are
// dropped (DropOldest, counted in Stats.Dropped). Dead letters are not
// counted against the bound.
//
// Size the budget as the publish rate times the longest outage to ride out,
// counting each message's payload, subject and headers and about 35 bytes of
// id and framing: 50 messages a second of 200 bytes for 4 hours is
// 50 × 230 × 14,400 ≈ 166 MB. The file (bbolt, in 64 KiB pages for new files)
// does not shrink when it drains; it reuses its free pages, and the process
// keeps a few bytes per free page in memory, about 1 MB for a file that once
// held 1 GB.
//
// # Damaged files
//
// No bytes of the file can crash the process or make the outbox forward
// what was not published. bbolt trusts its file: it maps it into memory,
// and a truncated file or a damaged page is a fault (SIGBUS, which no
// recover catches) or a panic. So Open first reads the file's structure
// itself, with plain reads, under bbolt's lock: the meta pages, the size the
// file must have, the freelist, and every page of every bucket (kind, place,
// elements inside their page, keys in order, no page reached twice or both
// used and free). A file that fails is an error matching ErrCorrupt, naming
// the path and what was wrong, and is left as it is. The check reads the
// pages in use, not the free ones: about 0.4 ms per MiB of file in the page
// cache (240 ms for a 598 MiB file holding 256 MiB of messages), a few ms
// for a file within the default budget. bbolt calls made on the outbox's
// goroutines also run with faults turned into panics
// (runtime/debug.SetPanicOnFault), recovered as errors matching ErrCorrupt.
//
// Each record carries a CRC-32C of its bytes and its own sequence, checked
// when it is read: a record whose bytes changed, or that sits under another
// record's key, is moved to the dead letters with a reason that says it
// cannot be decoded, its bytes as they were, and forwarding goes on with the
// next. A dead letter holds its message's id, checked too. Files written
// before records carried a checksum (format 1) are upgraded in place when
// opened: their records are read as they are (they cannot be verified), new
// ones carry a checksum. A version of this package that predates format 2
// refuses a file of format 2 rather than misread it.
//
// With WithSalvage, Open does not stop at a damaged file: it moves it aside,
// beside itself, as <name>.corrupt-<UTC time>, and writes to a new file at
// the path every record it can verify, walking past damaged pages, with the
// ids, order and sent mark they had. Outbox.Salvaged says how many pending
// messages and dead letters were kept, how many records failed their check
// (kept among the dead letters, with their bytes) and how many were lost;
// Open logs the same as a warning.
//
// The natsclient package itself does not import bbolt: only programs that
// import outbox compile it.
//
// # Metrics
//
// RegisterMetrics(mp) adds three gauges to an OpenTelemetry meter provider:
// natsclient.outbox.pending.messages (the backlog), natsclient.outbox.pending.bytes
// (its stored size) and natsclient.outbox.oldest.age (seconds; 0 when empty).
//
// # Errors
//
// Bad input (an invalid subject, a nil context or message, a reply subject,
// a Nats-Msg-Id header of the caller's) matches natsclient.ErrInvalidArgument
// and nothing is stored; invalid options match natsclient.ErrInvalidOption.
// ErrFull, ErrCorrupt and ErrClosed are this package's own. Publish never
// returns natsclient.ErrCircuitOpen.
package outbox
