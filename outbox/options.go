package outbox

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/c360/natsclient"
)

// Overflow says what Publish does when a message does not fit in the disk
// budget.
type Overflow int

const (
	// Reject refuses the new message: Publish returns an error matching
	// ErrFull and nothing already stored is touched.
	Reject Overflow = iota
	// DropOldest deletes the oldest pending messages until the new one fits.
	// Each drop is counted in Stats.Dropped and logged.
	DropOldest
)

// String returns the policy's name, such as "reject".
func (o Overflow) String() string {
	switch o {
	case Reject:
		return "reject"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// Defaults of the options.
const (
	DefaultMaxBytes    int64 = 64 << 20
	DefaultMaxInFlight       = 256
	DefaultAckTimeout        = 5 * time.Second
)

// Option configures Open.
type Option func(*options) error

type options struct {
	maxBytes    int64
	overflow    Overflow
	maxInFlight int
	ackTimeout  time.Duration
	logger      *slog.Logger
	salvage     bool
}

func defaultOptions() options {
	return options{
		maxBytes:    DefaultMaxBytes,
		overflow:    Reject,
		maxInFlight: DefaultMaxInFlight,
		ackTimeout:  DefaultAckTimeout,
	}
}

// loggerFor returns the logger WithLogger gave, or else the client's own
// (natsclient.Client.Slog), or else slog.Default().
func (o options) loggerFor(client *natsclient.Client) *slog.Logger {
	if o.logger != nil {
		return o.logger
	}
	if l := client.Slog(); l != nil {
		return l
	}
	return slog.Default()
}

func invalidOption(name, format string, args ...any) error {
	return fmt.Errorf("%w: outbox.%s: %s", natsclient.ErrInvalidOption, name, fmt.Sprintf(format, args...))
}

// WithMaxBytes sets the disk budget of pending messages, counted as the
// stored size of each record (payload, subject, headers, id and a few bytes
// of framing). Default 64 MiB. Dead letters do not count against it.
func WithMaxBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return invalidOption("WithMaxBytes", "%d is not positive", n)
		}
		o.maxBytes = n
		return nil
	}
}

// WithOverflow sets what Publish does when the budget is used up: Reject
// (the default) or DropOldest.
func WithOverflow(p Overflow) Option {
	return func(o *options) error {
		if p != Reject && p != DropOldest {
			return invalidOption("WithOverflow", "unknown policy %d", int(p))
		}
		o.overflow = p
		return nil
	}
}

// WithMaxInFlight sets how many publishes may be on the wire without an
// acknowledgement. Default 256.
func WithMaxInFlight(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalidOption("WithMaxInFlight", "%d is less than 1", n)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithAckTimeout sets how long the forwarder waits for a stream's
// acknowledgement before it checks the connection and sends the unacknowledged
// window again. Default 5s.
func WithAckTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("WithAckTimeout", "%v is not positive", d)
		}
		o.ackTimeout = d
		return nil
	}
}

// WithLogger sets the logger for dead letters, drops and forwarding faults.
// Default: the client's (the logger of natsclient.WithSlog, or of
// natsclient.WithLogger, as natsclient.Client.Slog returns it), and
// slog.Default() when the client has none.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return invalidOption("WithLogger", "nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithSalvage makes Open keep what it can of a damaged file instead of
// returning ErrCorrupt: the file is moved aside, in its directory, as
// <name>.corrupt-<UTC time> (never deleted), and a new file at the path
// holds every pending message and dead letter whose integrity could be
// verified (a record's checksum, its sequence), with the ids, order and
// sent mark they had, so forwarding goes on where it was. A pending record
// that fails its check is kept among the dead letters with its bytes, as
// the forwarder does with one it finds. Outbox.Salvaged returns the counts
// (kept, set aside, lost), and Open logs them as a warning. A file that is
// not an outbox's (another program's bbolt file) is still an error. Off by
// default: a damaged file then stays where it is, for a person or a tool.
//
// Salvage reads only the pages reachable from the file's last valid meta
// page (or the one before, when it keeps more): a damaged page may point to
// an older copy of records already forwarded, which are sent again, and the
// stream's duplicate window removes such copies within it. A salvaged file
// of records written before checksums (format 1) keeps those that decode.
func WithSalvage() Option {
	return func(o *options) error {
		o.salvage = true
		return nil
	}
}
