package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// front stands between one kind's clients and the server, so that the outage
// is the same instant for every kind and every dial can be counted and timed
// on the server's side. While up it pipes each connection to the server;
// while down it resets every open connection and accepts each new dial only to
// reset it at once, as a host whose server process has stopped would refuse
// it. Giving each kind its own front tells the kinds' dials apart.
type front struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	down      bool
	downDials int         // dials refused while down
	accepts   []time.Time // dials piped to the server while up
	open      map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func newFront(target string) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{ln: ln, target: target, open: make(map[net.Conn]struct{})}
	f.wg.Add(1)
	go f.acceptLoop()
	return f, nil
}

// URL is what the clients of this front dial.
func (f *front) URL() string { return "nats://" + f.ln.Addr().String() }

func (f *front) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		now := time.Now()
		f.mu.Lock()
		if f.down {
			f.downDials++
			f.mu.Unlock()
			reset(c)
			continue
		}
		f.accepts = append(f.accepts, now)
		f.open[c] = struct{}{}
		f.mu.Unlock()
		f.wg.Add(1)
		go f.pipe(c)
	}
}

// pipe copies between the client and a connection of its own to the server
// until either side ends.
func (f *front) pipe(client net.Conn) {
	defer f.wg.Done()
	server, err := net.Dial("tcp", f.target)
	if err != nil {
		f.forget(client)
		reset(client)
		return
	}
	done := make(chan struct{}, 2)
	go func() { copyPlain(server, client); done <- struct{}{} }()
	go func() { copyPlain(client, server); done <- struct{}{} }()
	<-done
	f.forget(client)
	reset(client)
	server.Close()
	<-done
}

// copyPlain copies through a buffer of its own. io.Copy between two TCP
// connections would splice through a pipe, two more descriptors for every
// blocked copy: with thousands of idle connections that is what runs out.
func copyPlain(dst io.Writer, src io.Reader) {
	io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 4096))
}

func (f *front) forget(c net.Conn) {
	f.mu.Lock()
	delete(f.open, c)
	f.mu.Unlock()
}

// setDown starts or ends the outage. Starting it resets every connection.
func (f *front) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	var cut []net.Conn
	if down {
		for c := range f.open {
			cut = append(cut, c)
		}
	}
	f.mu.Unlock()
	for _, c := range cut {
		reset(c)
	}
}

// counts returns the dials refused while down and the accept times while up,
// and starts both afresh.
func (f *front) counts() (downDials int, accepts []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	downDials, accepts = f.downDials, f.accepts
	f.downDials, f.accepts = 0, nil
	return downDials, accepts
}

func (f *front) close() {
	f.ln.Close()
	f.setDown(true)
	f.wg.Wait()
}

// reset closes c with a TCP RST, as a dead peer's kernel would answer.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
