package eventloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/flockmq/flockmq/broker"
)

// Options configure the gnet engine.
type Options struct {
	// Loops is the number of event loops (0 = GOMAXPROCS).
	Loops int
	// ReadBufferCap is each loop's read buffer in bytes (gnet rounds it up to a
	// power of two).
	ReadBufferCap int
	// Logger receives gnet's own log lines.
	Logger *slog.Logger
	// MaxConns is the number of open connections past which a new one is
	// closed as soon as it is accepted (0 = the open-file limit less
	// FDReserve). It keeps the process from running out of descriptors: gnet
	// stops its whole engine, dropping every connection, when accept fails
	// with EMFILE.
	MaxConns int
	// MaxPartialPacketBytes bounds the bytes held, across all connections,
	// for incoming packets not yet complete (0 =
	// DefaultMaxPartialPacketBytes; never below the broker's MaxPacketSize).
	// One connection holds at most one such packet, which the broker's
	// MaxPacketSize bounds. A connection whose packet would take the total
	// past it is closed (v5: DISCONNECT 0x89 Server busy), logged and
	// counted (PartialKicks). See partial.go.
	MaxPartialPacketBytes int64
	// ProxyProtocol makes every connection begin with a PROXY protocol
	// header (HAProxy's, version 1 or 2) from a load balancer in front of
	// the broker, whose source address the broker then reports as the
	// client's (the authenticator, logs). A connection without a valid
	// header is closed, logged and counted (ProxyRejected). Turn it on only
	// when nothing but the balancer can reach the listener: the header is
	// believed. See proxyproto.go.
	ProxyProtocol bool
}

// DefaultMaxPartialPacketBytes is the default Options.MaxPartialPacketBytes:
// 256 MiB, 256 partial packets of the default maximum packet size.
const DefaultMaxPartialPacketBytes = 256 << 20

// FDReserve is the number of descriptors the default MaxConns leaves for
// everything but client connections: listeners, pollers, raft's files and
// connections, the profiler.
const FDReserve = 64

// connCap is the default MaxConns: the open-file limit (which Go's os
// package has already raised to the hard limit) less FDReserve, or half the
// limit when it is small; 0 (no cap) if the limit cannot be read.
func connCap() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= 1<<62 {
		return 0
	}
	n := int(min(rl.Cur, 1<<30))
	if n <= 2*FDReserve {
		return n / 2
	}
	return n - FDReserve
}

// Server serves MQTT over plain TCP on gnet event loops, each driving one
// broker.Loop. Start and Stop are safe for concurrent use.
type Server struct {
	b    *broker.Broker
	addr string
	opts Options

	open    atomic.Int64  // connections between OnOpen and OnClose, lingering ones included
	refused atomic.Uint64 // connections closed at once: MaxConns reached
	lastLog atomic.Int64  // unix seconds of the last "refused" warning

	// Partial packets (partial.go).
	maxPacket    int          // the broker's MaxPacketSize
	partLimit    int64        // Options.MaxPartialPacketBytes, as applied
	partBytes    atomic.Int64 // bytes held for partial packets
	partKicks    atomic.Uint64
	partLastLog  atomic.Int64 // unix seconds of the last "budget" warning
	pageSize     int
	lingering    atomic.Int64  // connections lingering (linger.go)
	lingerDenied atomic.Uint64 // closed at once: maxLingering were lingering

	proxyRejected atomic.Uint64 // closed for a missing or bad PROXY header (proxyproto.go)
	proxyLastLog  atomic.Int64  // unix seconds of the last such warning

	mu    sync.Mutex
	eng   gnet.Engine
	loops map[gnet.EventLoop]*loopState
	ready chan struct{}
	done  chan error
	bound net.Addr
}

// NewServer returns a server for b listening on addr ("host:port"; port 0
// picks a free port, reported by Addr).
func NewServer(b *broker.Broker, addr string, opts Options) *Server {
	if opts.Loops <= 0 {
		opts.Loops = runtime.GOMAXPROCS(0)
	}
	if opts.ReadBufferCap <= 0 {
		opts.ReadBufferCap = 64 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = connCap()
	}
	if opts.MaxPartialPacketBytes <= 0 {
		opts.MaxPartialPacketBytes = DefaultMaxPartialPacketBytes
	}
	s := &Server{b: b, addr: addr, opts: opts, loops: make(map[gnet.EventLoop]*loopState),
		ready: make(chan struct{}), done: make(chan error, 1), pageSize: os.Getpagesize()}
	s.partLimit = opts.MaxPartialPacketBytes
	if b != nil {
		s.maxPacket = b.Config().MaxPacketSize
		s.partLimit = max(s.partLimit, int64(s.maxPacket))
	}
	return s
}

// Start listens and returns once the engine is serving, or with the error
// that stopped it from starting.
func (s *Server) Start() error {
	_, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		return fmt.Errorf("eventloop: listen address %q: %w", s.addr, err)
	}
	// SO_REUSEPORT gives every loop its own listener, which accepts and runs
	// OnOpen on the loop at once, so that a connection over MaxConns is
	// closed before the next accept. With port 0 and several loops each
	// would get a different port: a single listener hands connections out
	// then (tests only).
	reuse := port != "0" || s.opts.Loops == 1
	if port != "0" {
		// SO_REUSEPORT would let a second broker (or anything else that sets
		// it) share the port and silently take half the connections: check
		// with a plain listener that the port is free, as every other
		// listener would.
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("eventloop: listen on %s: %w", s.addr, err)
		}
		_ = ln.Close()
	}
	h := &handler{s: s}
	go func() {
		s.done <- gnet.Run(h, "tcp://"+s.addr,
			gnet.WithNumEventLoop(s.opts.Loops),
			gnet.WithMulticore(s.opts.Loops > 1),
			gnet.WithReusePort(reuse),
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReadBufferCap(s.opts.ReadBufferCap),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithLogger(gnetLogger{s.opts.Logger}),
		)
	}()
	select {
	case <-s.ready:
	case err := <-s.done:
		if err == nil {
			err = errors.New("engine stopped before it started")
		}
		return fmt.Errorf("eventloop: listen on %s: %w", s.addr, err)
	}
	return s.resolveAddr()
}

// resolveAddr learns the bound address from a duplicate of the listener.
func (s *Server) resolveAddr() error {
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	fd, err := eng.Dup()
	if err != nil {
		// Several listeners (SO_REUSEPORT): they share the configured port.
		a, rerr := net.ResolveTCPAddr("tcp", s.addr)
		if rerr != nil {
			return rerr
		}
		s.bound = a
		return nil
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("eventloop: inspect listener: %w", err)
	}
	defer ln.Close()
	s.bound = ln.Addr()
	return nil
}

// Addr is the address the server listens on, valid after Start.
func (s *Server) Addr() net.Addr { return s.bound }

// Stop stops accepting and closes every connection, then waits for the
// engine to finish or ctx to end.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	eng := s.eng
	s.mu.Unlock()
	if err := eng.Stop(ctx); err != nil && !strings.Contains(err.Error(), "shutdown") {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loopState is what the server keeps per gnet event loop: its broker loop
// and the connections lingering on it. Fields other than s and bl belong to
// the loop's goroutine.
type loopState struct {
	s         *Server
	bl        *broker.Loop
	tick      func() // bl.Tick, then the lingering connections' sweep
	lingering []*connExt
}

func (s *Server) loopFor(el gnet.EventLoop) *loopState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.loops[el]
	if ls == nil {
		var bl *broker.Loop
		bl = s.b.NewLoop(func(f func()) bool {
			return el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				defer func() {
					if v := recover(); v != nil {
						bl.Recovered(nil, v, debug.Stack())
					}
				}()
				f()
				return nil
			})) == nil
		})
		ls = &loopState{s: s, bl: bl}
		bl.SetAux(ls)
		ls.tick = func() {
			bl.Tick()
			ls.sweep()
		}
		s.loops[el] = ls
	}
	return ls
}

// handler adapts gnet's callbacks to the broker loop contract.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

// conn is a gnet connection: the broker's Client and its Transport in one
// allocation (96 bytes, a size class: mind it before adding a field). Its
// fields belong to the loop's goroutine.
type conn struct {
	client broker.Client
	c      gnet.Conn
}

// connExt is what a connection needs only while it holds a partial packet,
// lingers, awaits its PROXY header or was proxied. The gnet context of such
// a connection is its connExt rather than its conn, so that the others pay
// nothing for it.
type connExt struct {
	t    *conn
	part *partial     // the incoming packet not yet complete, if any (partial.go)
	lg   *lingerState // set once the connection lingers (linger.go)
	// src is the client's address from the PROXY header, if it named one;
	// kept as a value and formatted when asked for (proxyproto.go).
	src netip.AddrPort
	hdr bool // the PROXY header is awaited
}

// connOf returns the conn behind gnet connection c and its extension (nil
// if none); a nil conn for a connection that is not a client's.
func connOf(c gnet.Conn) (*conn, *connExt) {
	switch v := c.Context().(type) {
	case *conn:
		return v, nil
	case *connExt:
		return v.t, v
	}
	return nil, nil
}

// ext returns t's extension, making one (and t's gnet context) if it has
// none.
func (t *conn) ext() *connExt {
	if x, ok := t.c.Context().(*connExt); ok {
		return x
	}
	x := &connExt{t: t}
	t.c.SetContext(x)
	return x
}

// part is t's partial packet, nil if none.
func (t *conn) part() *partial {
	if x, ok := t.c.Context().(*connExt); ok {
		return x.part
	}
	return nil
}

// shrink makes t's gnet context t itself again once its extension holds
// nothing.
func (t *conn) shrink(x *connExt) {
	if x.part == nil && x.lg == nil && !x.hdr && !x.src.IsValid() && t.c.Context() == x {
		t.c.SetContext(t)
	}
}

// gone reports whether gnet has closed t: it clears a connection's context
// when it releases it, and the descriptor may belong to another connection
// from then on.
func (t *conn) gone() bool { return t.c.Context() == nil }

// loopState returns the server's state of t's loop.
func (t *conn) loopState() *loopState { return t.client.Loop().Aux().(*loopState) }

func (t *conn) Write(b []byte) error {
	_, err := t.c.Write(b)
	return err
}
func (t *conn) OutboundBuffered() int { return t.c.OutboundBuffered() }
func (t *conn) Resume()               { _ = t.c.Wake(nil) }

// Close closes the connection. A Graceful client's connection lingers
// instead (linger.go). From within the client's own Input (a DISCONNECT, a
// protocol error) OnTraffic returns gnet.Close instead, which closes at
// once; gnet's Close queues a task to the loop, an allocation and a wake-up
// per connection that a mass disconnect pays ten thousand times.
func (t *conn) Close(graceful bool) {
	if graceful && t.linger() {
		return
	}
	if !t.client.Reading() {
		_ = t.c.Close()
	}
}

// RemoteAddr is formatted when asked for (at CONNECT, for the authenticator)
// rather than kept: an idle connection does not carry it. A proxied
// connection reports the client's address from its PROXY header.
func (t *conn) RemoteAddr() string {
	if x, ok := t.c.Context().(*connExt); ok && x.src.IsValid() {
		return x.src.String()
	}
	if a := t.c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.s.mu.Lock()
	h.s.eng = eng
	h.s.mu.Unlock()
	close(h.s.ready)
	return gnet.None
}

// MaxConns reports the connection cap in force (0 = none).
func (s *Server) MaxConns() int { return s.opts.MaxConns }

// Refused is the number of connections closed on accept because MaxConns
// were open.
func (s *Server) Refused() uint64 { return s.refused.Load() }

func (h *handler) OnOpen(c gnet.Conn) (out []byte, action gnet.Action) {
	s := h.s
	if n := s.open.Add(1); s.opts.MaxConns > 0 && n > int64(s.opts.MaxConns) {
		s.open.Add(-1)
		s.refused.Add(1)
		if now := time.Now().Unix(); s.lastLog.Swap(now) != now {
			s.opts.Logger.Warn("connection closed on accept: the connection limit is reached",
				"max", s.opts.MaxConns, "refused", s.refused.Load())
		}
		return nil, gnet.Close
	}
	ls := h.s.loopFor(c.EventLoop())
	t := &conn{c: c}
	c.SetContext(t)
	defer recoverConn(ls.bl, t, &action)
	if s.opts.ProxyProtocol {
		t.ext().hdr = true
	}
	// Opened at once, PROXY header or not: the connect timeout bounds the
	// wait for the header too.
	ls.bl.OpenClient(&t.client, t)
	return nil, gnet.None
}

// recoverConn, deferred in a callback of t's, turns a panic into the close
// of t alone (broker.Loop.Recovered).
func recoverConn(l *broker.Loop, t *conn, action *gnet.Action) {
	if v := recover(); v != nil {
		l.Recovered(&t.client, v, debug.Stack())
		*action = gnet.Close
	}
}

// OnTraffic hands the complete packets to the broker. The bytes of a packet
// not yet complete move out of gnet into the connection's partial packet
// (partial.go), which is completed first when more bytes arrive. Complete
// packets the broker does not take now (a publisher paused by flow
// control, a CONNECT in flight) stay in gnet until Resume.
func (h *handler) OnTraffic(c gnet.Conn) (action gnet.Action) {
	t, x := connOf(c)
	if t == nil {
		return gnet.Close
	}
	if x != nil && x.lg != nil {
		return x.discard(c)
	}
	s := h.s
	l := t.client.Loop()
	defer recoverConn(l, t, &action)
	if x != nil && x.hdr {
		if done, act := s.takeProxyHeader(c, t, x); !done {
			return act
		}
		_, x = connOf(c) // shrunk away unless the header named a source
	}
	buf, _ := c.Peek(-1)
	used := 0
	if x != nil && x.part != nil {
		used = s.fill(t, x, buf)
		buf = buf[used:]
		if p := x.part; p != nil && p.complete() {
			if n := l.Input(&t.client, p.packet()); n > 0 || t.client.Closed() {
				s.freePart(t, x)
			}
		}
	}
	if t.part() == nil && len(buf) > 0 && !t.client.Closed() {
		n := l.Input(&t.client, buf)
		if n < len(buf) && !t.client.Closed() && s.startPartial(t, buf[n:]) {
			n = len(buf)
		}
		used += n
	}
	switch {
	case t.client.Closed():
		if x != nil {
			s.freePart(t, x) // Input has returned: nothing borrows it any more
		}
		_, _ = c.Discard(-1)
	case used > 0:
		// Discard only what was consumed: gnet's Discard(0) drops every
		// buffered byte, which would lose the unread packets of a
		// publisher paused by flow control.
		_, _ = c.Discard(used)
	}
	l.Flush()
	if x, ok := c.Context().(*connExt); t.client.Closed() && (!ok || x.lg == nil) {
		return gnet.Close
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, _ error) (action gnet.Action) {
	if t, x := connOf(c); t != nil {
		h.s.open.Add(-1)
		if x != nil && x.lg != nil {
			h.s.lingering.Add(-1)
		}
		// A write that fails closes the connection from within its own
		// Input, which may be reading the partial packet: OnTraffic frees
		// it once Input has returned.
		if x != nil && x.part != nil && !t.client.Reading() {
			h.s.freePart(t, x)
		}
		l := t.client.Loop()
		defer recoverConn(l, t, &action)
		l.Closed(&t.client)
		l.Flush()
	}
	return gnet.None
}

func (h *handler) OnTick() (time.Duration, gnet.Action) {
	h.s.mu.Lock()
	loops := make([]*loopState, 0, len(h.s.loops))
	for _, ls := range h.s.loops {
		loops = append(loops, ls)
	}
	h.s.mu.Unlock()
	for _, ls := range loops {
		ls.bl.Exec(ls.tick)
	}
	return time.Second, gnet.None
}

// gnetLogger sends gnet's log lines to slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: fatal: " + fmt.Sprintf(f, a...)) }
