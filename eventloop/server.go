package eventloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
}

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

	open    atomic.Int64  // connections between OnOpen and OnClose
	refused atomic.Uint64 // connections closed at once: MaxConns reached
	lastLog atomic.Int64  // unix seconds of the last "refused" warning

	mu    sync.Mutex
	eng   gnet.Engine
	loops map[gnet.EventLoop]*broker.Loop
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
	return &Server{b: b, addr: addr, opts: opts, loops: make(map[gnet.EventLoop]*broker.Loop),
		ready: make(chan struct{}), done: make(chan error, 1)}
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

func (s *Server) loopFor(el gnet.EventLoop) *broker.Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.loops[el]
	if l == nil {
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
		l = bl
		s.loops[el] = l
	}
	return l
}

// handler adapts gnet's callbacks to the broker loop contract.
type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

// conn is a gnet connection: the broker's Client and its Transport in one
// allocation.
type conn struct {
	client broker.Client
	c      gnet.Conn
}

func (t *conn) Write(b []byte) error {
	_, err := t.c.Write(b)
	return err
}
func (t *conn) OutboundBuffered() int { return t.c.OutboundBuffered() }
func (t *conn) Resume()               { _ = t.c.Wake(nil) }

// Close closes the connection. From within the client's own Input (a
// DISCONNECT, a protocol error) OnTraffic returns gnet.Close instead, which
// closes at once; gnet's Close queues a task to the loop, an allocation
// and a wake-up per connection that a mass disconnect pays ten thousand
// times.
func (t *conn) Close() {
	if !t.client.Reading() {
		_ = t.c.Close()
	}
}

// RemoteAddr is formatted when asked for (at CONNECT, for the authenticator)
// rather than kept: an idle connection does not carry it.
func (t *conn) RemoteAddr() string {
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
	t := &conn{c: c}
	l := h.s.loopFor(c.EventLoop())
	c.SetContext(t)
	defer recoverConn(l, t, &action)
	l.OpenClient(&t.client, t)
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

func (h *handler) OnTraffic(c gnet.Conn) (action gnet.Action) {
	t, ok := c.Context().(*conn)
	if !ok {
		return gnet.Close
	}
	l := t.client.Loop()
	defer recoverConn(l, t, &action)
	buf, _ := c.Peek(-1)
	if len(buf) > 0 {
		// Discard only what was consumed: gnet's Discard(0) drops every
		// buffered byte, which would lose a partial packet or the unread
		// packets of a publisher paused by flow control.
		if n := l.Input(&t.client, buf); n > 0 {
			_, _ = c.Discard(n)
		}
	}
	l.Flush()
	if t.client.Closed() {
		return gnet.Close
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, _ error) (action gnet.Action) {
	if t, ok := c.Context().(*conn); ok {
		h.s.open.Add(-1)
		l := t.client.Loop()
		defer recoverConn(l, t, &action)
		l.Closed(&t.client)
		l.Flush()
	}
	return gnet.None
}

func (h *handler) OnTick() (time.Duration, gnet.Action) {
	h.s.mu.Lock()
	loops := make([]*broker.Loop, 0, len(h.s.loops))
	for _, l := range h.s.loops {
		loops = append(loops, l)
	}
	h.s.mu.Unlock()
	for _, l := range loops {
		l.Exec(l.Tick)
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
