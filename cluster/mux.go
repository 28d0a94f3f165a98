package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One TCP port carries raft and the node's own RPCs (leader forwarding). The
// dialer writes one byte naming the stream type first, as Consul does; the
// listener hands raft streams to raft's transport and the rest to handlers.
const (
	streamRaft    byte = 'R'
	streamForward byte = 'F'
)

// mux accepts connections on one listener and sorts them by their first byte.
// Safe for concurrent use.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	raftCh    chan net.Conn
	handlers  map[byte]func(net.Conn)
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// gate runs the cluster key handshake of accepted connections, auth
	// that of dialled ones (both nil without a key); set before serve.
	gate *keyGate
	auth *connAuth

	mu    sync.Mutex
	conns map[net.Conn]struct{} // connections not yet handed to raft, closed with the mux
}

func newMux(ln net.Listener, advertise net.Addr) *mux {
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &mux{ln: ln, advertise: advertise, raftCh: make(chan net.Conn, 16),
		handlers: make(map[byte]func(net.Conn)), closed: make(chan struct{}), conns: make(map[net.Conn]struct{})}
}

// handle registers the handler of a stream type; call before serve.
func (m *mux) handle(kind byte, h func(net.Conn)) { m.handlers[kind] = h }

// serve accepts until the listener closes.
func (m *mux) serve() {
	m.wg.Add(1)
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(c)
		}()
	}
}

// route runs the cluster key handshake (when the port has a key), reads the
// stream type byte and passes the connection on; a refused, unknown or
// silent peer is dropped. Until it is passed on, the connection is closed
// with the mux.
func (m *mux) route(c net.Conn) {
	if !m.track(c) {
		c.Close()
		return
	}
	if !m.gate.admit(c) {
		m.untrack(c)
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var kind [1]byte
	if _, err := c.Read(kind[:]); err != nil {
		m.untrack(c)
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if kind[0] == streamRaft {
		m.untrack(c) // raft's transport closes it from here on
		select {
		case m.raftCh <- c:
		case <-m.closed:
			c.Close()
		}
		return
	}
	h := m.handlers[kind[0]]
	if h == nil {
		m.untrack(c)
		c.Close()
		return
	}
	h(c)
	m.untrack(c)
}

// track adds c to the connections closed with the mux; false once the mux
// is closed.
func (m *mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closed:
		return false
	default:
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *mux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

func (m *mux) close() {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		close(m.closed)
		for c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
		m.ln.Close()
	})
	m.wg.Wait()
}

// dial opens a stream of the given kind to addr, after the cluster key
// handshake when auth is set; timeout bounds both.
func dial(addr string, kind byte, timeout time.Duration, auth *connAuth) (net.Conn, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if err := auth.dialSide(c, deadline); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft port %s: %w", addr, err)
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// raftLayer is the raft.StreamLayer over the mux.
type raftLayer struct{ m *mux }

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftCh:
		return c, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

func (l raftLayer) Close() error   { l.m.close(); return nil }
func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dial(string(addr), streamRaft, timeout, l.m.auth)
}
