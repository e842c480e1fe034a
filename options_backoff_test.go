package natsclient

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMaxBackoffDefaultFollowsTheReconnectWait checks the rule NewClient
// applies to the breaker's cap: when WithMaxBackoff is not given, the cap is
// the larger of DefaultMaxBackoff and the reconnect wait; when it is given,
// it stands, and one shorter than the wait is refused, naming WithMaxBackoff.
func TestMaxBackoffDefaultFollowsTheReconnectWait(t *testing.T) {
	cases := []struct {
		name    string
		opts    []Option
		want    time.Duration // the cap the client runs with
		refused bool
	}{
		{name: "defaults", want: DefaultMaxBackoff},
		{name: "short wait alone", opts: []Option{WithReconnectWait(100 * time.Millisecond)}, want: DefaultMaxBackoff},
		{name: "long wait alone", opts: []Option{WithReconnectWait(10 * time.Second)}, want: 10 * time.Second},
		{name: "long wait, longer cap", opts: []Option{WithReconnectWait(10 * time.Second), WithMaxBackoff(time.Minute)}, want: time.Minute},
		{name: "cap before wait", opts: []Option{WithMaxBackoff(time.Minute), WithReconnectWait(10 * time.Second)}, want: time.Minute},
		{name: "short cap alone", opts: []Option{WithMaxBackoff(3 * time.Second)}, want: 3 * time.Second},
		{name: "cap shorter than wait", opts: []Option{WithReconnectWait(10 * time.Second), WithMaxBackoff(6 * time.Second)}, refused: true},
		{name: "cap shorter than default wait", opts: []Option{WithMaxBackoff(time.Second)}, refused: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient("nats://127.0.0.1:4222", tc.opts...)
			if tc.refused {
				if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "WithMaxBackoff") {
					t.Fatalf("NewClient = %v, want ErrInvalidOption naming WithMaxBackoff", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			if c.opts.maxBackoff != tc.want {
				t.Fatalf("cap = %v, want %v", c.opts.maxBackoff, tc.want)
			}
			if c.sup.m.breaker.maxInterval != tc.want {
				t.Fatalf("breaker's cap = %v, want %v", c.sup.m.breaker.maxInterval, tc.want)
			}
		})
	}
}
