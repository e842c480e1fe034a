package natstest

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The fault proxy stands between every test client and its server, on both
// backends. It is our own small TCP relay rather than Shopify's toxiproxy
// (v2.5.0 could run in-process) for three reasons:
//
//   - Freeze must hold data, not drop it. toxiproxy's nearest toxic, "timeout"
//     with 0, discards what passes while it is active (Shopify/toxiproxy#168:
//     it reads and drops, and the connection must be closed when the toxic
//     goes), so a Thaw would silently lose a client's PING or a publish; here
//     a frozen direction simply stops writing, the bytes wait in our buffer
//     and the kernel's, and Thaw delivers them in order.
//   - FreezeReplies (hold server→client while client→server flows, a lost
//     acknowledgement) is one flag here; in toxiproxy it is a downstream-only
//     toxic of the same dropping kind.
//   - No dependency: toxiproxy brings an HTTP API, metrics and a logger into
//     every user's test binary for some 250 lines of relay.
//
// Each client connection is a link: the accepted client socket, a socket to
// the server, and for each direction a reader and a writer goroutine joined by
// a small queue of timestamped chunks. The writer applies the faults: it waits
// while its direction is frozen, holds each chunk until it is Latency old,
// then writes it. Closing a link closes both sockets, which ends its readers,
// and its done channel, which ends its writers.

// direction of traffic through a link.
type direction int

const (
	toServer direction = iota // client → server
	toClient                  // server → client
)

// proxy relays TCP connections from a stable listening address to the
// server's current address, applying faults.
type proxy struct {
	ln net.Listener
	wg sync.WaitGroup // the accept loop and every link goroutine

	mu       sync.Mutex
	upstream string             // server address; "" while it is stopped
	latency  time.Duration      // added to every chunk in both directions
	gate     [2]chan struct{}   // per direction: nil when open, closed on thaw
	links    map[*link]struct{} // live links
	refusing bool               // partitioned: links are cut and new ones reset
	closed   bool
}

// link is one relayed client connection.
type link struct {
	client, server net.Conn
	done           chan struct{}
	once           sync.Once
	serverGone     atomic.Bool // the server's side ended: stopped, closed, or failed
}

// chunkQueue bounds what a link holds in memory per direction while frozen;
// beyond it, backpressure reaches the sender through TCP, as in a real
// network, and nothing is dropped.
const (
	chunkQueue = 16
	chunkSize  = 32 << 10
	dialWait   = 2 * time.Second
)

type chunk struct {
	data []byte
	at   time.Time // when it was read
}

// newProxy listens on a random port of 127.0.0.1.
func newProxy() (*proxy, error) { return listenProxy("127.0.0.1") }

// listenProxy listens on a random port of host: route proxies of container
// members listen where the containers can reach the host.
func listenProxy(host string) (*proxy, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// addr is the address clients connect to; it never changes.
func (p *proxy) addr() string { return p.ln.Addr().String() }

// setUpstream points new connections at addr; "" refuses them (a stopped
// server). Existing links are not touched: Stop closes them by stopping the
// server.
func (p *proxy) setUpstream(addr string) {
	p.mu.Lock()
	p.upstream = addr
	p.mu.Unlock()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.mu.Lock()
		upstream, refusing := p.upstream, p.refusing
		p.mu.Unlock()
		if upstream == "" || refusing {
			reset(c) // as close to "connection refused" as an open listener gets
			continue
		}
		// Dial in the accept loop: connections arrive one by one in tests,
		// and it keeps the listener's lifetime simple.
		s, err := net.DialTimeout("tcp", upstream, dialWait)
		if err != nil {
			reset(c)
			continue
		}
		p.startLink(c, s)
	}
}

func (p *proxy) startLink(c, s net.Conn) {
	l := &link{client: c, server: s, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed || p.refusing { // refused while this link was being dialled
		p.mu.Unlock()
		reset(c)
		reset(s)
		return
	}
	p.links[l] = struct{}{}
	p.wg.Add(4)
	p.mu.Unlock()
	up := make(chan chunk, chunkQueue)
	down := make(chan chunk, chunkQueue)
	go p.read(l, c, up)
	go p.writeServer(l, up)
	go p.read(l, s, down)
	go p.writeClient(l, down)
}

// read moves chunks from conn into q until conn fails or closes.
func (p *proxy) read(l *link, conn net.Conn, q chan<- chunk) {
	defer p.wg.Done()
	defer close(q)
	buf := make([]byte, chunkSize)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			data := make([]byte, n) // the queue keeps it while buf is reused
			copy(data, buf[:n])
			select {
			case q <- chunk{data: data, at: time.Now()}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// writeServer delivers what the client sent. When the client closes, what
// it sent is delivered and the link closes. When the server cannot take it
// (stopped), the server's side is marked gone and closed; the client learns
// of it through writeClient, which respects a freeze.
func (p *proxy) writeServer(l *link, q <-chan chunk) {
	defer p.wg.Done()
	for c := range q {
		if _, ok := p.hold(l, toServer, c.at); !ok {
			return
		}
		if _, err := l.server.Write(c.data); err != nil {
			p.endServer(l)
			return
		}
	}
	p.closeLink(l, false)
}

// writeClient delivers what the server sent, then, once the server's side has
// ended, closes the client's connection. A frozen direction hides both until
// Thaw. What was held by a freeze while the server went away is lost with it,
// as an acknowledgement lost on the way is: the client's connection is then
// reset on Thaw instead of receiving it. (Held data is otherwise delivered,
// in order.)
func (p *proxy) writeClient(l *link, q <-chan chunk) {
	defer p.wg.Done()
	for c := range q {
		held, ok := p.hold(l, toClient, c.at)
		if !ok {
			return
		}
		if held && l.serverGone.Load() {
			p.closeLink(l, true)
			return
		}
		if _, err := l.client.Write(c.data); err != nil {
			p.closeLink(l, false)
			return
		}
	}
	held, ok := p.hold(l, toClient, time.Time{}) // the close passes no freeze either
	if ok {
		p.closeLink(l, held)
	}
}

// endServer marks the server's side of l gone and closes it, which ends the
// server's reader and so, through writeClient, the link.
func (p *proxy) endServer(l *link) {
	l.serverGone.Store(true)
	_ = l.server.Close()
}

// hold waits until direction d is open and the chunk read at is old enough.
// It reports whether it waited for a freeze to end, and false for ok when
// the link closed meanwhile.
func (p *proxy) hold(l *link, d direction, at time.Time) (held, ok bool) {
	for {
		p.mu.Lock()
		gate, latency := p.gate[d], p.latency
		p.mu.Unlock()
		if gate != nil {
			held = true
			select {
			case <-gate:
				continue // thawed; look again, it may have been frozen anew
			case <-l.done:
				return held, false
			}
		}
		wait := time.Until(at.Add(latency))
		if wait <= 0 {
			return held, true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			// Look at the gate again: a freeze during the wait holds this chunk too.
		case <-l.done:
			t.Stop()
			return held, false
		}
	}
}

// freeze holds traffic in the given directions until thaw.
func (p *proxy) freeze(ds ...direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range ds {
		if p.gate[d] == nil {
			p.gate[d] = make(chan struct{})
		}
	}
}

// thaw lets held traffic through, in order, in both directions.
func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, g := range p.gate {
		if g != nil {
			close(g)
			p.gate[d] = nil
		}
	}
}

// refuse cuts every link and resets new connections until admit: a network
// partition as the two ends see it once their connection has failed. The
// server behind the proxy keeps running.
func (p *proxy) refuse() {
	p.mu.Lock()
	p.refusing = true
	p.mu.Unlock()
	p.cut()
}

// admit ends refuse: new connections are relayed again.
func (p *proxy) admit() {
	p.mu.Lock()
	p.refusing = false
	p.mu.Unlock()
}

func (p *proxy) setLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// serverGone ends the server's side of every live link, as a server that
// shut down has; each client then sees its connection end once what was
// already read from the server is delivered (see writeClient for a frozen
// link). The backend's own shutdown normally closes these sockets too, but a
// container's may not reach through Docker's port forwarding promptly, so
// Stop does not rely on it.
func (p *proxy) serverGone() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		p.endServer(l)
	}
}

// cut resets every live link at once: both sockets are closed with SO_LINGER
// 0, so each peer gets a TCP RST, not an orderly FIN. Held data is discarded,
// as a cut would.
func (p *proxy) cut() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		p.closeLink(l, true)
	}
}

func (p *proxy) closeLink(l *link, rst bool) {
	l.once.Do(func() {
		close(l.done)
		if rst {
			reset(l.client)
			reset(l.server)
		} else {
			l.client.Close()
			l.server.Close()
		}
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	})
}

// close stops listening, resets every link and waits for every goroutine.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// reset closes c so that its peer sees a connection reset.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
