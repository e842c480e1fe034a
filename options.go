package natsclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for the options. They are documented in NewClient's comment.
const (
	DefaultMaxReconnects           = -1
	DefaultReconnectWait           = 2 * time.Second
	DefaultTimeout                 = 5 * time.Second
	DefaultCircuitBreakerThreshold = 5
	DefaultMaxBackoff              = 6 * time.Second
	DefaultPingInterval            = 2 * time.Minute
)

// Option configures a Client. Options are validated by NewClient: a bad value
// is an error matching ErrInvalidOption that names the option, never replaced
// by a default.
type Option func(*options) error

// Logger receives the client's log records as lines of text. A *log.Logger
// satisfies it; for a *slog.Logger prefer WithSlog, which keeps levels and
// attributes.
type Logger interface {
	Printf(format string, v ...any)
}

// SlogLogger adapts a *slog.Logger to Logger, logging each line at Info as
// formatted text. WithSlog logs structured records at meaningful levels.
func SlogLogger(l *slog.Logger) Logger { return slogLogger{l} }

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) {
	s.l.Log(context.Background(), slog.LevelInfo, fmt.Sprintf(format, v...))
}

type options struct {
	maxReconnects int
	reconnectWait time.Duration
	timeout       time.Duration
	threshold     int
	maxBackoff    time.Duration
	// maxBackoffSet records that WithMaxBackoff was given: without it the
	// cap follows the reconnect wait (settleMaxBackoff).
	maxBackoffSet bool
	pingInterval  time.Duration
	name          string
	logger        Logger
	jsDomain      string // WithJetStreamDomain; "" for the server's own
	slog          *slog.Logger

	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	kvKeysInSpans  bool

	onDisconnect func(error)
	onReconnect  func()
	onClosed     func()

	// natsOptions hold authentication, TLS and the user's escape-hatch
	// options, applied to every connection the supervisor dials.
	natsOptions []nats.Option
}

func defaultOptions() options {
	return options{
		maxReconnects: DefaultMaxReconnects,
		reconnectWait: DefaultReconnectWait,
		timeout:       DefaultTimeout,
		threshold:     DefaultCircuitBreakerThreshold,
		maxBackoff:    DefaultMaxBackoff,
		pingInterval:  DefaultPingInterval,
	}
}

// settleMaxBackoff applies the rule that ties the breaker's cap to the
// reconnect wait once every option is in: a cap the user never set follows a
// longer wait (the breaker's interval starts at the wait, so a shorter cap
// could never hold), and one the user set must not be shorter than it.
func (o *options) settleMaxBackoff() error {
	if !o.maxBackoffSet {
		o.maxBackoff = max(DefaultMaxBackoff, o.reconnectWait)
		return nil
	}
	if o.maxBackoff < o.reconnectWait {
		return invalidOption("WithMaxBackoff", "%v is shorter than the reconnect wait %v (WithReconnectWait)",
			o.maxBackoff, o.reconnectWait)
	}
	return nil
}

func invalidOption(name string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidOption, name, fmt.Sprintf(format, args...))
}

// WithMaxReconnects sets how many reconnect attempts one nats.go connection
// makes before nats.go gives it up (-1: never, the default). The client
// itself never gives up before Close: when nats.go gives a connection up, the
// supervisor dials a new one with the same backoff and breaker. The default
// was 5; a new connection per dial after that cost a fleet of clients 2.5
// times the CPU of keeping one (docs/benchmarks.md, "Fleet").
func WithMaxReconnects(n int) Option {
	return func(o *options) error {
		if n < -1 {
			return invalidOption("WithMaxReconnects", "%d is below -1 (use -1 for unlimited)", n)
		}
		o.maxReconnects = n
		return nil
	}
}

// WithReconnectWait sets the wait between reconnect attempts while the breaker
// is closed, and the breaker's first open interval (default 2s). It must be
// positive. Without WithMaxBackoff, the cap on the breaker's interval is the
// larger of DefaultMaxBackoff and this wait, so a wait longer than 6s needs
// no WithMaxBackoff of its own (the interval then stays at the wait).
func WithReconnectWait(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("WithReconnectWait", "%v must be positive", d)
		}
		o.reconnectWait = d
		return nil
	}
}

// WithTimeout sets the dial timeout and the timeout of flushes and probes the
// client makes on its own (default 5s). It must be positive.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("WithTimeout", "%v must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// WithCircuitBreakerThreshold sets how many consecutive transport failures
// open the breaker (default 5). It must be at least 1.
func WithCircuitBreakerThreshold(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalidOption("WithCircuitBreakerThreshold", "%d must be at least 1", n)
		}
		o.threshold = n
		return nil
	}
}

// WithMaxBackoff caps the breaker's growing open interval, and so the longest
// wait between two connection attempts. Its default is DefaultMaxBackoff (6s),
// or the reconnect wait when WithReconnectWait sets a longer one. Given, it
// must be at least the reconnect wait: NewClient refuses a cap shorter than
// it with an error matching ErrInvalidOption that names WithMaxBackoff.
func WithMaxBackoff(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("WithMaxBackoff", "%v must be positive", d)
		}
		o.maxBackoff = d
		o.maxBackoffSet = true
		return nil
	}
}

// WithPingInterval sets how often the connection pings the server; a server
// that misses two pings in a row is taken as gone (default 2m).
func WithPingInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("WithPingInterval", "%v must be positive", d)
		}
		o.pingInterval = d
		return nil
	}
}

// WithName sets the connection name the server shows in its monitoring.
func WithName(name string) Option {
	return func(o *options) error {
		o.name = name
		return nil
	}
}

// WithLogger sends the client's debug output to l. A nil Logger is an error.
func WithLogger(l Logger) Option {
	return func(o *options) error {
		if l == nil {
			return invalidOption("WithLogger", "nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithDisconnectCallback calls fn, outside the supervisor, each time the
// connection to the server is lost. fn may call back into the client.
func WithDisconnectCallback(fn func(error)) Option {
	return func(o *options) error {
		o.onDisconnect = fn
		return nil
	}
}

// WithReconnectCallback calls fn, outside the supervisor, each time the client
// is connected again after losing its connection, whether nats.go reconnected
// or the supervisor dialled a new connection. fn may call back into the client.
func WithReconnectCallback(fn func()) Option {
	return func(o *options) error {
		o.onReconnect = fn
		return nil
	}
}

// WithClosedCallback calls fn, outside the supervisor, once the client has
// been closed by Close. fn may call back into the client.
func WithClosedCallback(fn func()) Option {
	return func(o *options) error {
		o.onClosed = fn
		return nil
	}
}

// WithUserInfo authenticates with a user name and password.
func WithUserInfo(user, password string) Option {
	return func(o *options) error {
		if user == "" {
			return invalidOption("WithUserInfo", "empty user name")
		}
		o.natsOptions = append(o.natsOptions, nats.UserInfo(user, password))
		return nil
	}
}

// WithToken authenticates with a token.
func WithToken(token string) Option {
	return func(o *options) error {
		if token == "" {
			return invalidOption("WithToken", "empty token")
		}
		o.natsOptions = append(o.natsOptions, nats.Token(token))
		return nil
	}
}

// WithCredentials authenticates with a NATS credentials file (a user JWT and
// its nkey seed). The file is read and checked on every dial; one that
// cannot be read or parsed fails the dial with ErrPermanent.
func WithCredentials(file string) Option {
	return func(o *options) error {
		if file == "" {
			return invalidOption("WithCredentials", "empty file name")
		}
		o.natsOptions = append(o.natsOptions, credentialsFromFile(file))
		return nil
	}
}

// WithNKeyFile authenticates with the nkey seed in file. The file is read
// when the option is applied: an unreadable file or a bad seed is an error
// from NewClient.
func WithNKeyFile(file string) Option {
	return func(o *options) error {
		opt, err := nats.NkeyOptionFromSeed(file)
		if err != nil {
			return invalidOption("WithNKeyFile", "%v", err)
		}
		o.natsOptions = append(o.natsOptions, opt)
		return nil
	}
}

// WithTLSConfig connects with TLS using cfg.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return invalidOption("WithTLSConfig", "nil *tls.Config")
		}
		o.natsOptions = append(o.natsOptions, nats.Secure(cfg))
		return nil
	}
}

// WithNATSOptions passes options straight to nats.go, after the client's own.
// Handlers set here (disconnect, reconnect, closed, error) are called in
// addition to the client's, which the supervisor needs; the reconnect
// delay, reconnect count and dialer stay the client's.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) error {
		for i, opt := range opts {
			if opt == nil {
				return invalidOption("WithNATSOptions", "option %d is nil", i)
			}
		}
		o.natsOptions = append(o.natsOptions, opts...)
		return nil
	}
}
