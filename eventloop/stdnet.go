package eventloop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// The std server: MQTT over TLS, WebSocket and WebSocket over TLS, on Go's
// blocking net.Conn (crypto/tls, net/http), feeding the same broker as the
// gnet engine.
//
// Loops. A few std loops (StdOptions.Loops) each run one broker.Loop on a
// goroutine of its own, which runs the closures handed to its exec in order
// and ticks the loop once a second. exec never blocks: it appends to the
// loop's queue under a mutex and wakes the goroutine. The queue has no count
// bound; its producers bound it: a connection has at most its open, one
// read (or the retry of one, Resume) and its close queued, the broker
// coalesces mailbox drains (Loop.scheduled), and once the loop is stopped
// exec refuses (reports false).
//
// Connections. Each connection has a reader goroutine (the accepting one
// once the TLS handshake is done; for WebSocket, net/http's handler
// goroutine). It reads into its buffer and hands the buffer to its loop,
// which runs Input, keeps the bytes Input left and answers; the reader waits
// for the answer before it reads again, so a connection never has more than
// one buffer of unconsumed bytes. Input leaves bytes for two reasons: a
// packet not yet whole (the answer is "read more"), or whole packets the
// broker is not reading now, a CONNECT in flight or a publisher held back by
// flow control (no answer until the broker calls Resume: the reader reads
// nothing meanwhile, and TCP pushes back on the client).
//
// Writes append to the connection's output buffer under its lock; a writer
// goroutine, started when there is something to send and ended when there
// is not, writes it to the socket. A loop never writes a socket.
// OutboundBuffered is the buffer plus the write in progress, so that the
// broker's OutboundHighWater holds back what it sends to a slow client;
// past StdOptions.MaxOutboundBytes a Write fails and the broker closes the
// connection (counted: OutboundKicks).
//
// Close hands the connection to its writer, which sends what is buffered
// and then closes. A graceful close (broker.Transport.Close) shuts down the
// sending side only (TLS close_notify and a TCP FIN; for WebSocket, the
// closing handshake), and the reader discards what still arrives until the
// peer closes, lingerTime passes or lingerMaxBytes have arrived (the same
// limits as the gnet engine's lingering, linger.go).

// StdOptions configure a StdServer.
type StdOptions struct {
	// Loops is the number of loops (0 = GOMAXPROCS).
	Loops int
	// Logger receives the server's log lines (nil = slog.Default()).
	Logger *slog.Logger
	// MaxConns caps the connections open on the server's listeners,
	// handshakes in progress included; past it a new connection is closed
	// as soon as it is accepted, a WebSocket upgrade refused with 503
	// (0 = the open-file limit less FDReserve). It is the server's own cap:
	// the gnet engine's is separate.
	MaxConns int
	// ReadBufferSize is the bytes a connection reads at a time (0 = 16 KiB).
	// A connection's buffer grows past it for a larger packet only.
	ReadBufferSize int
	// MaxOutboundBytes bounds the bytes waiting to be sent to one
	// connection: a Write that would pass it fails, and the broker closes
	// the connection (0 = four times the broker's OutboundHighWater plus
	// its MaxPacketSize).
	MaxOutboundBytes int
	// HandshakeTimeout bounds the TLS handshake and the WebSocket upgrade
	// request (0 = 10 s).
	HandshakeTimeout time.Duration
	// WSOriginPatterns are the Origin host patterns a WebSocket upgrade
	// from a browser page of another host may come from (path.Match
	// syntax; see websocket.AcceptOptions.OriginPatterns). Empty allows
	// every origin: MQTT authenticates in its CONNECT, not with the
	// browser's cookies.
	WSOriginPatterns []string
}

// StdServer serves MQTT over TLS and WebSocket (ws, wss) listeners on std
// loops, each driving one broker.Loop. Its methods are safe for concurrent
// use.
type StdServer struct {
	b         *broker.Broker
	opts      StdOptions
	log       *slog.Logger
	maxPacket int // the broker's MaxPacketSize
	outCap    int // StdOptions.MaxOutboundBytes, as applied

	// stopCtx ends when Stop begins: TLS handshakes in progress and
	// accept back-offs give up.
	stopCtx  context.Context
	stopping context.CancelFunc

	open              atomic.Int64 // connections accepted and not yet ended
	refused           atomic.Uint64
	handshakeFailures atomic.Uint64
	outboundKicks     atomic.Uint64
	lastRefusedLog    atomic.Int64 // unix seconds
	lastAcceptLog     atomic.Int64
	lastKickLog       atomic.Int64

	mu      sync.Mutex
	loops   []*stdLoop // made by the first listener
	lns     []net.Listener
	https   []*http.Server
	conns   map[*stdConn]struct{}
	stopped bool
	// wg counts the accept loops, the HTTP servers, and every connection's
	// reader and writer goroutines. Add is called under mu while !stopped,
	// or by a goroutine it already counts.
	wg sync.WaitGroup
}

// errStdStopped is returned by the listen methods once Stop has begun.
var errStdStopped = errors.New("eventloop: the server is stopped")

// NewStdServer returns a server for b with no listener yet; add them with
// ListenTLS and ListenWS. Its loops start with the first listener.
func NewStdServer(b *broker.Broker, opts StdOptions) *StdServer {
	if opts.Loops <= 0 {
		opts.Loops = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = connCap()
	}
	if opts.ReadBufferSize <= 0 {
		opts.ReadBufferSize = 16 << 10
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	cfg := b.Config()
	if opts.MaxOutboundBytes <= 0 {
		opts.MaxOutboundBytes = 4*cfg.OutboundHighWater + cfg.MaxPacketSize
	}
	s := &StdServer{b: b, opts: opts, log: opts.Logger, maxPacket: cfg.MaxPacketSize,
		outCap: opts.MaxOutboundBytes, conns: make(map[*stdConn]struct{})}
	s.stopCtx, s.stopping = context.WithCancel(context.Background())
	return s
}

// ListenTLS listens on addr ("host:port"; port 0 picks a free one) for MQTT
// over TLS and returns the bound address. cfg is the server's (see
// CertStore.ServerConfig); a MinVersion below TLS 1.2 is raised to it.
func (s *StdServer) ListenTLS(addr string, cfg *tls.Config) (net.Addr, error) {
	if err := checkServerTLS(cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("eventloop: listen for TLS on %s: %w", addr, err)
	}
	if err := s.AddTLSListener(ln, cfg); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// AddTLSListener serves MQTT over TLS on connections accepted from ln, in
// goroutines of its own; it returns at once. Stop closes ln.
func (s *StdServer) AddTLSListener(ln net.Listener, cfg *tls.Config) error {
	if err := checkServerTLS(cfg); err != nil {
		return err
	}
	cfg = tls12(cfg)
	if err := s.addListener(ln, nil); err != nil {
		return err
	}
	go s.acceptTLS(ln, cfg)
	return nil
}

// checkServerTLS reports what makes cfg unusable for a server.
func checkServerTLS(cfg *tls.Config) error {
	if cfg == nil {
		return errors.New("eventloop: a TLS listener needs a tls.Config")
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errors.New("eventloop: the tls.Config has no certificate")
	}
	return nil
}

// tls12 returns cfg, or a copy of it with MinVersion raised to TLS 1.2.
func tls12(cfg *tls.Config) *tls.Config {
	if cfg.MinVersion >= tls.VersionTLS12 {
		return cfg
	}
	cfg = cfg.Clone()
	cfg.MinVersion = tls.VersionTLS12
	return cfg
}

// addListener records ln (and hs, the HTTP server serving it, if any),
// starts the loops if they are not running, and counts the goroutine the
// caller starts next for it.
func (s *StdServer) addListener(ln net.Listener, hs *http.Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errStdStopped
	}
	if s.loops == nil {
		s.startLoops()
	}
	s.lns = append(s.lns, ln)
	if hs != nil {
		s.https = append(s.https, hs)
	}
	s.wg.Add(1)
	return nil
}

// Addrs are the addresses listened on, in the order the listeners were
// added.
func (s *StdServer) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Open is the number of connections open, handshakes in progress included.
func (s *StdServer) Open() int64 { return s.open.Load() }

// Refused is the number of connections closed on accept because MaxConns
// were open.
func (s *StdServer) Refused() uint64 { return s.refused.Load() }

// HandshakeFailures is the number of TLS handshakes on ListenTLS listeners
// that failed or timed out: no certificate in common, a client certificate
// missing, expired or from an unknown CA, a TLS version below 1.2, a client
// that is not speaking TLS. (For wss, net/http runs the handshake and logs
// its failures at debug level.)
func (s *StdServer) HandshakeFailures() uint64 { return s.handshakeFailures.Load() }

// OutboundKicks is the number of connections closed because more than
// MaxOutboundBytes were waiting to be sent to them.
func (s *StdServer) OutboundKicks() uint64 { return s.outboundKicks.Load() }

// Stop stops accepting, closes every connection (sending first, within
// lingerTime, what is already buffered for it: the broker's Shutdown,
// which comes before, has written their DISCONNECTs), waits for the
// connections' goroutines, then stops the loops once they have run what
// was queued. It returns ctx's error if ctx ends first; whatever is left is
// closed then.
func (s *StdServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	first := !s.stopped
	s.stopped = true
	lns, https, loops := s.lns, s.https, s.loops
	conns := make([]*stdConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if first {
		s.stopping()
		for _, hs := range https {
			_ = hs.Close() // its listener and its connections not yet upgraded
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, c := range conns {
		c.stop()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("eventloop: stop: connections still open: %w", ctx.Err())
		s.mu.Lock()
		for c := range s.conns {
			c.kill()
		}
		s.mu.Unlock()
	}
	for _, l := range loops {
		if lerr := l.halt(ctx); lerr != nil && err == nil {
			err = lerr
		}
	}
	return err
}

// admit counts a new connection, or refuses it past MaxConns.
func (s *StdServer) admit() bool {
	if n := s.open.Add(1); n > int64(s.opts.MaxConns) {
		s.open.Add(-1)
		s.refused.Add(1)
		if now := time.Now().Unix(); s.lastRefusedLog.Swap(now) != now {
			s.log.Warn("connection closed on accept: the connection limit is reached",
				"max", s.opts.MaxConns, "refused", s.refused.Load())
		}
		return false
	}
	return true
}

// acceptTLS accepts connections from ln until it is closed, each served by
// a goroutine of its own. Errors other than ln's close (out of
// descriptors) back off for up to a second, as net/http's Serve does.
func (s *StdServer) acceptTLS(ln net.Listener, cfg *tls.Config) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.stopCtx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if now := time.Now().Unix(); s.lastAcceptLog.Swap(now) != now {
				s.log.Warn("accept failed; retrying", "listener", ln.Addr().String(), "err", err, "retry-in", backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.stopCtx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if !s.admit() {
			_ = raw.Close()
			continue
		}
		s.wg.Add(1) // this goroutine is counted: Wait cannot have returned
		go s.serveTLS(raw, cfg)
	}
}

// serveTLS runs the handshake of raw, then serves it until it ends.
func (s *StdServer) serveTLS(raw net.Conn, cfg *tls.Config) {
	defer s.wg.Done()
	tc := tls.Server(raw, cfg)
	ctx, cancel := context.WithTimeout(s.stopCtx, s.opts.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.handshakeFailures.Add(1)
		s.log.Debug("TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		_ = raw.Close()
		s.open.Add(-1)
		return
	}
	st := tc.ConnectionState()
	c := s.newConn(stdSock{rw: tc, raw: raw, tls: tc}, "tls", raw.RemoteAddr().String(), verifiedLeaf(&st))
	s.run(c, true)
}

// run serves c, admitted already, on the calling goroutine, which becomes
// its reader, until it ends. counted says whether the caller's goroutine
// is in wg yet (net/http's handler goroutines are not).
func (s *StdServer) run(c *stdConn, counted bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		c.sock.kill()
		s.open.Add(-1)
		c.l.conns.Add(-1)
		return
	}
	s.conns[c] = struct{}{}
	if !counted {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.open.Add(-1)
		c.l.conns.Add(-1)
		if !counted {
			s.wg.Done()
		}
	}()
	if c.l.exec(c.openFn) {
		c.readLoop()
	}
	c.end()
}

// pickLoop returns the loop with the fewest connections, counting c there.
func (s *StdServer) pickLoop() *stdLoop {
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	best := loops[0]
	for _, l := range loops[1:] {
		if l.conns.Load() < best.conns.Load() {
			best = l
		}
	}
	best.conns.Add(1)
	return best
}

// startLoops registers and starts the loops. s.mu must be held.
func (s *StdServer) startLoops() {
	s.loops = make([]*stdLoop, s.opts.Loops)
	for i := range s.loops {
		l := &stdLoop{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		l.bl = s.b.NewLoop(l.exec)
		s.loops[i] = l
		go l.run()
	}
}

// stdLoop is a goroutine running one broker.Loop: the closures given to
// exec, in order, and a Tick every second.
type stdLoop struct {
	bl    *broker.Loop
	conns atomic.Int32 // connections on this loop, for pickLoop

	mu      sync.Mutex
	q       []func()
	spare   []func()
	stopped bool

	wake chan struct{} // capacity 1: the queue has work
	stop chan struct{} // closed by halt
	done chan struct{} // closed when run returns
}

// exec queues f to run on the loop's goroutine and reports true, or reports
// false once the loop is stopped. It never blocks. Safe for concurrent use.
func (l *stdLoop) exec(f func()) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.q = append(l.q, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// run is the loop's goroutine.
func (l *stdLoop) run() {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-l.wake:
			l.drain()
		case <-tick.C:
			l.call(l.bl.Tick)
			l.call(l.bl.Flush)
		case <-l.stop:
			// What was queued before the stop: exec refuses from now on.
			for {
				l.mu.Lock()
				n := len(l.q)
				l.mu.Unlock()
				if n == 0 {
					return
				}
				l.drain()
			}
		}
	}
}

// drain runs the closures queued, then flushes the connections. More
// queued meanwhile waits for the next turn of run, after a due Tick: a
// loop that always has work still ticks. Loop goroutine only.
func (l *stdLoop) drain() {
	l.mu.Lock()
	batch := l.q
	l.q, l.spare = l.spare[:0], nil
	l.mu.Unlock()
	for _, f := range batch {
		l.call(f)
	}
	l.call(l.bl.Flush)
	clear(batch)
	l.mu.Lock()
	if cap(batch) <= 4096 {
		l.spare = batch[:0]
	}
	more := len(l.q) > 0
	l.mu.Unlock()
	if more {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// call runs f, turning a panic into broker.Loop.Recovered. Loop goroutine
// only.
func (l *stdLoop) call(f func()) {
	defer func() {
		if v := recover(); v != nil {
			l.bl.Recovered(nil, v, debug.Stack())
		}
	}()
	f()
}

// halt stops the loop after it has run what is queued; exec refuses from
// then on. It waits for the goroutine to end or ctx to end.
func (l *stdLoop) halt(ctx context.Context) error {
	l.mu.Lock()
	if !l.stopped {
		l.stopped = true
		close(l.stop)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("eventloop: stop: a loop is still running: %w", ctx.Err())
	}
}

// stdSock is a connection's socket: what it reads and writes, and what
// closes it.
type stdSock struct {
	rw  net.Conn        // the byte stream: the *tls.Conn, or the WebSocket's net.Conn
	raw net.Conn        // the accepted connection under it (for wss, the *tls.Conn)
	tls *tls.Conn       // rw, for a TLS listener's connection
	ws  *websocket.Conn // for a WebSocket
}

// closeWrite ends the sending side once the last words are written: a TLS
// close_notify and a TCP FIN, or the WebSocket closing handshake (which
// waits for the client's answer, at most 5 s, and closes).
func (k stdSock) closeWrite() {
	if k.ws != nil {
		_ = k.ws.Close(websocket.StatusNormalClosure, "")
		return
	}
	_ = k.tls.CloseWrite()
	if tcp, ok := k.raw.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
}

// close closes politely: a TLS close_notify, the WebSocket closing
// handshake.
func (k stdSock) close() {
	if k.ws != nil {
		_ = k.ws.Close(websocket.StatusNormalClosure, "")
		return
	}
	_ = k.tls.Close()
}

// kill closes the TCP connection at once, whatever its reader and writer
// are doing. Safe for concurrent use.
func (k stdSock) kill() {
	if tc, ok := k.raw.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = k.raw.Close()
}

// closeMode is how the broker asked a connection to close.
type closeMode uint8

const (
	modeOpen     closeMode = iota
	modePlain              // send what is buffered, close
	modeGraceful           // send what is buffered, shut the sending side, discard what arrives
)

// stdConn is one connection of the std server: the broker's Client and its
// Transport. Fields are grouped by owner.
type stdConn struct {
	client broker.Client
	s      *StdServer
	l      *stdLoop
	sock   stdSock
	kind   string // "tls", "ws" or "wss"
	remote string
	peer   *x509.Certificate

	// The read handoff. in belongs to the reader until it execs handoffFn,
	// then to the loop until the loop answers on reply.
	in    []byte
	reply chan bool // capacity 1: true = read more, false = closed
	// Loop goroutine only.
	owe      bool // the reader waits for an answer
	awaiting bool // ... and gets it when the broker calls Resume
	// closing is set by Close: the reader discards what still arrives.
	closing atomic.Bool

	openFn, handoffFn, inputFn, closedFn func() // bound once

	// gone is closed by kill.
	gone     chan struct{}
	killOnce sync.Once

	// Output, under wmu.
	wmu      sync.Mutex
	out      []byte // waiting for the writer
	spare    []byte // the writer's previous batch, for reuse
	writing  int    // bytes of the write in progress
	writer   bool   // a writer goroutine runs
	mode     closeMode
	final    bool // the writer has taken the close: nothing more is sent
	broken   bool // a write failed
	dead     bool // the reader has ended: the socket is closed
	stopping bool // Stop: send what is buffered, then close at once
}

// maxSpareOut is the capacity past which a written batch is dropped rather
// than kept for the next one.
const maxSpareOut = 64 << 10

// errConnClosed is returned by Write to a connection closing or closed.
var errConnClosed = errors.New("eventloop: write to a closed connection")

// newConn makes the connection for sock, on the least busy loop.
func (s *StdServer) newConn(sock stdSock, kind, remote string, peer *x509.Certificate) *stdConn {
	c := &stdConn{s: s, l: s.pickLoop(), sock: sock, kind: kind, remote: remote, peer: peer,
		reply: make(chan bool, 1), gone: make(chan struct{})}
	c.openFn, c.handoffFn, c.inputFn, c.closedFn = c.open, c.handoff, c.input, c.closed
	return c
}

// verifiedLeaf is the client certificate the handshake verified, nil if
// none.
func verifiedLeaf(st *tls.ConnectionState) *x509.Certificate {
	if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		return st.VerifiedChains[0][0]
	}
	return nil
}

// PeerCertificate is the client certificate the TLS handshake verified
// against the client CAs (mTLS), nil without one: its Subject.CommonName,
// DNSNames, EmailAddresses and URIs name the client. It implements
// broker.CertTransport. Safe for concurrent use.
func (c *stdConn) PeerCertificate() *x509.Certificate { return c.peer }

// Kind names the listener: "tls", "ws" or "wss". It implements
// broker.CertTransport. Safe for concurrent use.
func (c *stdConn) Kind() string { return c.kind }

// RemoteAddr is the peer's address (for WebSocket, the HTTP request's).
// Safe for concurrent use.
func (c *stdConn) RemoteAddr() string { return c.remote }

// readLoop reads until the connection ends, handing what it reads to the
// loop and waiting for its answer each time. Reader goroutine only.
func (c *stdConn) readLoop() {
	size := c.s.opts.ReadBufferSize
	buf := make([]byte, 0, size)
	for {
		if cap(buf)-len(buf) < min(size, 2048) {
			buf = c.grow(buf)
		}
		n, err := c.sock.rw.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			if c.closing.Load() {
				c.discard(n, buf[:cap(buf)])
				return
			}
			c.in = buf[:len(buf)+n]
			if !c.l.exec(c.handoffFn) {
				return
			}
			select {
			case more := <-c.reply:
				buf = c.in
				if !more {
					c.discard(0, buf[:cap(buf)])
					return
				}
			case <-c.gone:
				return // the loop may still hold c.in: leave it
			}
			if len(buf) == 0 && cap(buf) > 4*size {
				buf = make([]byte, 0, size) // a large packet has been handled
			}
		}
		if err != nil {
			return
		}
	}
}

// grow returns buf with room to read into: a buffer's worth more, or room
// for the whole packet buf begins with if its header says it is larger
// (at most the broker's MaxPacketSize: a larger one is refused at its
// header). Reader goroutine only.
func (c *stdConn) grow(buf []byte) []byte {
	want := len(buf) + c.s.opts.ReadBufferSize
	if h, err := codec.ReadFixedHeader(buf, c.s.maxPacket); err == nil {
		want = max(want, h.Len())
	}
	nb := make([]byte, len(buf), want)
	copy(nb, buf)
	return nb
}

// discard reads and drops what arrives after the broker closed the
// connection, n bytes being dropped already, until the peer closes, the
// read deadline the writer sets passes, or lingerMaxBytes have arrived.
// Reader goroutine only.
func (c *stdConn) discard(n int, scratch []byte) {
	for n <= lingerMaxBytes {
		m, err := c.sock.rw.Read(scratch)
		n += m
		if err != nil {
			return
		}
	}
}

// end is the reader's last act: the socket is closed and the loop told.
// Reader goroutine only.
func (c *stdConn) end() {
	c.wmu.Lock()
	c.dead = true
	c.wmu.Unlock()
	c.kill()
	if c.sock.ws != nil {
		_ = c.sock.ws.CloseNow() // the socket is closed: this only releases the library's state
	}
	c.l.exec(c.closedFn)
}

// kill closes the socket at once. Safe for concurrent use.
func (c *stdConn) kill() {
	c.killOnce.Do(func() {
		close(c.gone)
		c.sock.kill()
	})
}

// open registers c with the broker. Loop goroutine only.
func (c *stdConn) open() {
	defer func() {
		if v := recover(); v != nil {
			c.l.bl.Recovered(nil, v, debug.Stack())
			c.kill()
		}
	}()
	c.l.bl.OpenClient(&c.client, c)
}

// closed tells the broker the connection is gone. Loop goroutine only.
func (c *stdConn) closed() { c.l.bl.Closed(&c.client) }

// handoff is the reader's call: c.in holds what it read. Loop goroutine
// only.
func (c *stdConn) handoff() {
	c.owe = true
	c.input()
}

// input hands c.in to the broker, keeps what it left, and answers the
// reader: read more, closed, or (whole packets left, the broker not reading
// them now) not yet: Resume runs input again. Loop goroutine only.
func (c *stdConn) input() {
	if !c.owe {
		return // answered already (Close)
	}
	c.awaiting = false
	bl := c.l.bl
	if c.client.Closed() {
		c.answer(false)
		return
	}
	defer func() {
		if v := recover(); v != nil {
			bl.Recovered(&c.client, v, debug.Stack()) // closes c
			if c.owe {
				c.answer(false)
			}
		}
	}()
	n := bl.Input(&c.client, c.in)
	if c.client.Closed() {
		c.in = c.in[:0]
		c.answer(false)
		return
	}
	c.in = c.in[:copy(c.in, c.in[n:])]
	if c.stalled() {
		c.awaiting = true
		return
	}
	c.answer(true)
}

// stalled reports whether c.in, what Input left, begins with a whole
// packet, or with a header Input refuses when it gets to it: the broker is
// not reading c now. Otherwise it begins with a packet not yet whole, or
// is empty. Loop goroutine only.
func (c *stdConn) stalled() bool {
	if len(c.in) == 0 {
		return false
	}
	h, err := codec.ReadFixedHeader(c.in, c.s.maxPacket)
	if err != nil {
		return err != codec.ErrIncomplete
	}
	return h.Len() <= len(c.in)
}

// answer gives the reader its answer. It never blocks: one answer at most
// is owed. Loop goroutine only.
func (c *stdConn) answer(more bool) {
	c.owe, c.awaiting = false, false
	c.reply <- more
}

// Write queues b for the writer goroutine. Past MaxOutboundBytes it fails,
// and the broker closes the connection. Loop goroutine only.
func (c *stdConn) Write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead || c.broken || c.final {
		return errConnClosed
	}
	if n := len(c.out) + c.writing + len(b); n > c.s.outCap {
		s := c.s
		s.outboundKicks.Add(1)
		if now := time.Now().Unix(); s.lastKickLog.Swap(now) != now {
			s.log.Warn("connection closed: the client is not reading what is sent to it",
				"remote", c.remote, "listener", c.kind, "buffered", n-len(b), "max", s.outCap)
		}
		return fmt.Errorf("eventloop: %d bytes waiting for %s: past the outbound limit of %d", n, c.remote, s.outCap)
	}
	c.out = append(c.out, b...)
	c.startWriter()
	return nil
}

// OutboundBuffered is the bytes written and not yet sent: the buffer and
// the write in progress. Loop goroutine only.
func (c *stdConn) OutboundBuffered() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.out) + c.writing
}

// Resume runs Input again with the bytes it left, if the reader waits for
// it. Loop goroutine only.
func (c *stdConn) Resume() {
	if c.awaiting {
		c.awaiting = false
		c.l.exec(c.inputFn)
	}
}

// Close sends what is buffered and closes: graceful shuts down the sending
// side first and discards what still arrives for a while (see the
// package's notes above). From within c's Input the reader is answered
// once Input has returned. Loop goroutine only.
func (c *stdConn) Close(graceful bool) {
	c.closing.Store(true)
	c.wmu.Lock()
	if c.mode == modeOpen {
		c.mode = modePlain
		if graceful {
			c.mode = modeGraceful
		}
		c.startWriter()
	}
	c.wmu.Unlock()
	// A writer blocked on a client that does not read gives up then.
	_ = c.sock.rw.SetWriteDeadline(time.Now().Add(lingerTime))
	if c.owe && !c.client.Reading() {
		c.answer(false)
	}
}

// stop is Stop's close: what is buffered is sent within lingerTime, then
// the socket is closed at once. Safe for concurrent use.
func (c *stdConn) stop() {
	_ = c.sock.rw.SetWriteDeadline(time.Now().Add(lingerTime))
	c.wmu.Lock()
	c.stopping = true
	running := c.writer
	c.wmu.Unlock()
	if !running {
		c.kill()
	}
}

// startWriter starts the writer goroutine if there is work for it and it
// is not running. wmu must be held.
func (c *stdConn) startWriter() {
	if c.writer || c.dead || c.broken || c.final {
		return
	}
	c.writer = true
	c.s.wg.Add(1) // the reader is counted and alive (!dead): Wait cannot have returned
	go c.writeLoop()
}

// writeLoop sends the output buffer until it is empty, then ends, or
// closes the connection as Close or stop asked. Writer goroutine only.
func (c *stdConn) writeLoop() {
	defer c.s.wg.Done()
	for {
		c.wmu.Lock()
		if c.dead || c.broken {
			c.writer = false
			c.wmu.Unlock()
			return
		}
		if len(c.out) == 0 {
			mode, stopping := c.mode, c.stopping
			if mode == modeOpen && !stopping {
				c.writer = false
				c.wmu.Unlock()
				return
			}
			c.final = true
			c.writer = false
			c.wmu.Unlock()
			if stopping {
				c.kill()
				return
			}
			// The reader discards until the peer closes, for lingerTime at
			// most; a WebSocket's closing handshake waits for the peer's
			// close frame no longer either.
			_ = c.sock.rw.SetReadDeadline(time.Now().Add(lingerTime))
			if mode == modeGraceful {
				c.sock.closeWrite()
			} else {
				c.sock.close()
			}
			return
		}
		batch := c.out
		c.out, c.spare = c.spare[:0], nil
		c.writing = len(batch)
		c.wmu.Unlock()
		_, err := c.sock.rw.Write(batch)
		c.wmu.Lock()
		c.writing = 0
		if cap(batch) <= maxSpareOut {
			c.spare = batch[:0]
		}
		if err != nil {
			c.broken = true
			c.writer = false
		}
		c.wmu.Unlock()
		if err != nil {
			c.kill() // the reader ends and tells the loop
			return
		}
	}
}
