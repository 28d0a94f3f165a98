package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/panjf2000/gnet/v2"
)

// The std-net transport carries MQTT over TLS, which gnet cannot: a
// crypto/tls connection per client on the standard library's network stack.
// It feeds the same per-client protocol code as gnet (client.opened,
// decode, answer, flush, closed) on the same loop states, so the accounting
// is the same; only the byte transport differs.
//
// Threads: stdLoops stand in for gnet's event loops, one goroutine each,
// which run every job of their clients in order (the open, each batch of
// bytes read, publish ticks, the close), so per-client state stays loop
// goroutine only. Each connection has two goroutines: a reader, which
// blocks in Read and hands each batch to its loop and waits for it to be
// decoded, and a writer, which writes what the loop queued. The loop never
// blocks on the network: a write only appends to the connection's outbound
// buffer (unbounded, as gnet's is: QoS 0 publishers stop at outboundHigh,
// QoS 1/2 at their window), so a broker that stops reading while it cannot
// write to us cannot stall a loop.

// executor runs jobs one at a time, in order, on one goroutine: a gnet
// event loop, or a stdLoop.
type executor interface {
	Execute(ctx context.Context, job gnet.Runnable) error
}

// clientConn is a client's connection as the protocol code writes to it: a
// gnet.Conn, or a stdConn. Loop goroutine only.
type clientConn interface {
	Write(b []byte) (int, error)
	Close() error
	OutboundBuffered() int
}

// errLoopStopped: a job for a stdLoop that has stopped.
var errLoopStopped = errors.New("bench: loop stopped")

// Std-net limits.
const (
	stdJobQueue      = 1024             // jobs queued per stdLoop before Execute blocks
	stdReadMin       = 4 << 10          // free space a read needs; the read buffer grows to fit
	handshakeTimeout = 10 * time.Second // per TLS handshake, like the TCP dial's
	closeGrace       = time.Second      // to write what is left once a connection closes
)

// stdLoop runs jobs in order on one goroutine, as a gnet event loop does.
// Execute is safe for concurrent use.
type stdLoop struct {
	jobs chan gnet.Runnable
	quit chan struct{}
	done chan struct{}
}

func newStdLoop() *stdLoop {
	l := &stdLoop{jobs: make(chan gnet.Runnable, stdJobQueue), quit: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Execute queues job. It blocks while the queue is full; the loop never
// blocks, so that is brief.
func (l *stdLoop) Execute(ctx context.Context, job gnet.Runnable) error {
	select {
	case l.jobs <- job:
		return nil
	case <-l.quit:
		return errLoopStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *stdLoop) run() {
	defer close(l.done)
	ctx := context.Background()
	for {
		select {
		case j := <-l.jobs:
			_ = j.Run(ctx)
		case <-l.quit:
			return
		}
	}
}

// stop ends the loop once nothing waits for a job any more (see stdNet.stop).
func (l *stdLoop) stop() {
	close(l.quit)
	<-l.done
}

// stdNet is a Runner's std-net transport: its loops, its connections and
// the TLS client configuration. Safe for concurrent use.
type stdNet struct {
	r     *Runner
	loops []*stdLoop
	next  atomic.Uint64  // round-robin loop choice
	wg    sync.WaitGroup // every reader and writer goroutine

	mu     sync.Mutex
	base   *tls.Config
	byHost map[string]*tls.Config // under mu: base with each host's server name
	conns  []*stdConn             // under mu
	hs     *hdrhistogram.Histogram
	info   TLSStats // version and cipher of the first handshake; under mu
}

func newStdNet(r *Runner) (*stdNet, error) {
	base := r.cfg.tlsConf
	if base == nil {
		var err error
		if base, err = r.cfg.clientTLS(); err != nil {
			return nil, err
		}
	}
	n := &stdNet{r: r, base: base, byHost: map[string]*tls.Config{}, hs: newHist()}
	for range r.cfg.Loops {
		n.loops = append(n.loops, newStdLoop())
	}
	return n, nil
}

// configFor is the TLS configuration for host:port: the base one, with the
// host as the name to verify unless --tls-server-name or --insecure is given.
func (n *stdNet) configFor(hostport string) *tls.Config {
	if n.base.ServerName != "" || n.base.InsecureSkipVerify {
		return n.base
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.byHost[hostport]; ok {
		return c
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	c := n.base.Clone()
	c.ServerName = host // an IP address is verified against the IP SANs
	n.byHost[hostport] = c
	return c
}

// enroll runs the TLS handshake on raw and hands the connection to a loop,
// which writes CONNECT. The CONNACK latency runs from the handshake's start.
// On an error raw is closed. Dialer goroutines only.
func (n *stdNet) enroll(ctx context.Context, c *client, raw net.Conn) error {
	start := n.r.clk.now()
	tc := tls.Client(raw, n.configFor(c.host))
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = raw.Close()
		return fmt.Errorf("tls handshake: %w", err)
	}
	n.noteHandshake(tc.ConnectionState(), n.r.clk.now()-start)
	sc := &stdConn{n: n, c: c, raw: raw, tc: tc, loop: n.loops[n.next.Add(1)%uint64(len(n.loops))],
		in: make([]byte, 0, stdReadMin), ran: make(chan struct{}, 1)}
	sc.cond.L = &sc.mu
	sc.readJob, sc.closeJob = gnet.RunnableFunc(sc.onRead), gnet.RunnableFunc(sc.onClose)
	n.mu.Lock()
	n.conns = append(n.conns, sc)
	n.mu.Unlock()
	n.wg.Add(2)
	go sc.writeLoop()
	open := gnet.RunnableFunc(func(context.Context) error {
		sc.c.flush(sc.c.opened(n.r.loopFor(sc.loop), sc, start))
		return nil
	})
	if err := sc.loop.Execute(context.Background(), open); err != nil {
		sc.kill()
		n.wg.Done() // the reader that will not run
		return err
	}
	go sc.readLoop() // after the open job: the loop runs jobs in order
	return nil
}

func (n *stdNet) noteHandshake(st tls.ConnectionState, ns int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.info.Handshakes == 0 {
		n.info.Version = tls.VersionName(st.Version)
		n.info.Cipher = tls.CipherSuiteName(st.CipherSuite)
		if st.CurveID != 0 {
			n.info.Group = st.CurveID.String()
		}
	}
	n.info.Handshakes++
	record(n.hs, ns)
}

// stats returns the handshake figures so far and folds the histogram into
// h. Call after stop.
func (n *stdNet) stats(h *hdrhistogram.Histogram) TLSStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	h.Merge(n.hs)
	return n.info
}

// stop closes whatever connection is left, waits for every reader and
// writer, then stops the loops: no reader waits for a job any more.
func (n *stdNet) stop() {
	n.mu.Lock()
	conns := n.conns
	n.mu.Unlock()
	for _, sc := range conns {
		sc.kill()
	}
	n.wg.Wait()
	for _, l := range n.loops {
		l.stop()
	}
}

// stdConn is one TLS connection of the std-net transport.
type stdConn struct {
	n    *stdNet
	c    *client
	raw  net.Conn // the TCP connection under tc
	tc   *tls.Conn
	loop *stdLoop

	// Reader goroutine, and the loop while it runs readJob or closeJob,
	// for which the reader waits (ran).
	in       []byte // bytes read and not yet decoded
	readErr  error
	ran      chan struct{}
	readJob  gnet.Runnable
	closeJob gnet.Runnable

	local  atomic.Bool  // closed by this side: no error to report, nothing more to decode
	queued atomic.Int64 // bytes written by the loop and not yet sent

	mu      sync.Mutex
	cond    sync.Cond // the writer waits on it; L is mu
	out     []byte    // under mu: queued bytes
	closing bool      // under mu: write what is queued, then close
	dead    bool      // under mu: the socket is closed, write nothing more
	werr    error     // under mu: the writer's error
}

// Write queues b for the writer. Loop goroutine only.
func (sc *stdConn) Write(b []byte) (int, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closing {
		return 0, net.ErrClosed
	}
	sc.out = append(sc.out, b...)
	sc.queued.Add(int64(len(b)))
	sc.cond.Signal()
	return len(b), nil
}

// Close closes the connection once what is queued has been written, as
// gnet's Close does. Loop goroutine only.
func (sc *stdConn) Close() error {
	sc.local.Store(true)
	sc.mu.Lock()
	sc.closing = true
	sc.cond.Signal()
	sc.mu.Unlock()
	return nil
}

// OutboundBuffered is what the loop wrote that has not been sent yet.
func (sc *stdConn) OutboundBuffered() int { return int(sc.queued.Load()) }

// shutdown closes the socket at once; the writer drops what is queued.
// Safe for concurrent use.
func (sc *stdConn) shutdown() {
	sc.mu.Lock()
	sc.closing, sc.dead = true, true
	sc.cond.Signal()
	sc.mu.Unlock()
	_ = sc.raw.Close()
}

// kill is shutdown by this side (Runner.Stop): not an error of the
// connection.
func (sc *stdConn) kill() {
	sc.local.Store(true)
	sc.shutdown()
}

// writeLoop sends what the loop queues until the connection closes.
func (sc *stdConn) writeLoop() {
	defer sc.n.wg.Done()
	var buf []byte
	for {
		sc.mu.Lock()
		for len(sc.out) == 0 && !sc.closing {
			sc.cond.Wait()
		}
		buf, sc.out = sc.out, buf[:0]
		closing, dead := sc.closing, sc.dead
		sc.mu.Unlock()
		if dead {
			return
		}
		if closing {
			_ = sc.tc.SetWriteDeadline(time.Now().Add(closeGrace))
		}
		if len(buf) > 0 {
			_, err := sc.tc.Write(buf)
			sc.queued.Add(-int64(len(buf)))
			if err != nil {
				sc.mu.Lock()
				sc.werr = err
				sc.mu.Unlock()
				sc.shutdown() // the reader fails next and reports werr
				return
			}
		}
		if closing { // Write refuses more once closing: buf was the last
			_ = sc.tc.Close() // close_notify, then the socket
			return
		}
	}
}

// readLoop reads until the connection fails or closes, handing each batch
// to the loop, then has the loop account for the close.
func (sc *stdConn) readLoop() {
	defer sc.n.wg.Done()
	for {
		if cap(sc.in)-len(sc.in) < stdReadMin {
			grown := make([]byte, len(sc.in), max(2*cap(sc.in), len(sc.in)+stdReadMin))
			copy(grown, sc.in)
			sc.in = grown
		}
		k, err := sc.tc.Read(sc.in[len(sc.in):cap(sc.in)])
		if k > 0 {
			sc.in = sc.in[:len(sc.in)+k]
			if sc.loop.Execute(context.Background(), sc.readJob) != nil {
				sc.kill() // the Runner is stopping
				return
			}
			<-sc.ran
		}
		if err != nil {
			sc.shutdown()
			sc.readErr = err
			if sc.loop.Execute(context.Background(), sc.closeJob) == nil {
				<-sc.ran
			}
			return
		}
	}
}

// onRead decodes the bytes read so far with the protocol code gnet's
// OnTraffic uses and keeps the incomplete rest. Loop goroutine only.
func (sc *stdConn) onRead(context.Context) error {
	c := sc.c
	if sc.local.Load() || c.state >= stateClosed {
		sc.in = sc.in[:0] // closed by this side: gnet delivers nothing more either
	} else {
		now := c.r.clk.now()
		off, out, keep := c.decode(sc.in, c.loop.wbuf[:0], now)
		sc.in = sc.in[:copy(sc.in, sc.in[off:])]
		c.answer(out, now, keep)
		if !keep {
			_ = sc.Close()
		}
	}
	sc.ran <- struct{}{}
	return nil
}

// onClose accounts for the connection's end, as gnet's OnClose does: with
// no error when this side closed it, else the writer's or the reader's.
// Loop goroutine only.
func (sc *stdConn) onClose(context.Context) error {
	var err error
	if !sc.local.Load() {
		sc.mu.Lock()
		err = sc.werr
		sc.mu.Unlock()
		if err == nil {
			err = sc.readErr
		}
	}
	sc.c.closed(err)
	sc.ran <- struct{}{}
	return nil
}
