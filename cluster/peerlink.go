package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The peer link is the publish data plane between nodes (DESIGN.md §5): one
// persistent, ordered TCP stream from this node to each other node, carrying
// opaque frames with at-least-once delivery across reconnects and
// exactly-once, in-order delivery per sender session at the receiver.
//
//   - PeerLink is the sending end to one remote node. Send queues a copy of
//     a frame and numbers it (seq 1, 2, ... per link session); one writer
//     goroutine drains the queue into a buffered connection and flushes when
//     the queue is momentarily empty or a batch is full. Frames stay in
//     memory until the receiver's cumulative ack covers them; after a broken
//     connection the writer redials with jittered, capped backoff, sends a
//     hello (node, boot, session, first seq) and replays every
//     unacknowledged frame in order.
//   - PeerListener is the receiving end for every sender. It reads the hello,
//     keeps per sender node the last delivered seq of its current (boot,
//     session), drops frames at or below it (replays), delivers the next
//     one, and acks cumulatively after AckEvery frames or AckDelay.
//
// A restarted sender (larger boot) or a new PeerLink value (new session) is
// a new sequence that starts over; a hello with a smaller boot than the one
// known is refused. Delivery survives link drops, not the crash of either
// node: a restarted receiver starts every sender at the hello's first seq.
//
// Wire format: peerlink_wire.go.

// ErrPeerLinkFull is returned by PeerLink.Send when the frame does not fit in
// the bounded queue. The frame was not queued. Overflow policy for the
// cluster layer (Cluster.Forward): QoS 0 publishes are dropped and counted;
// QoS 1/2 publishes are never dropped: they go with SendAlways, and their
// publishers are held (reading stops, PUBACK/PUBREC are withheld) while the
// link is Congested (CongestBytes held).
var ErrPeerLinkFull = errors.New("cluster: peer link queue full")

// ErrPeerLinkClosed is returned by PeerLink.Send after Close.
var ErrPeerLinkClosed = errors.New("cluster: peer link closed")

// ErrPeerFrameTooLarge is returned by PeerLink.Send for a frame longer than
// MaxFrameBytes or one that could never fit in MaxQueueBytes.
var ErrPeerFrameTooLarge = errors.New("cluster: peer link frame too large")

// PeerLinkConfig configures the sending end of a peer link. Zero fields take
// the values of DefaultPeerLinkConfig.
type PeerLinkConfig struct {
	// Node is this node's id (1 to 255 bytes), Boot its boot id.
	Node string
	Boot uint64
	// Addr is the remote node's peer link address. Dial, when set, replaces
	// the TCP dial to Addr (tests, TLS); the cluster key handshake runs on
	// the connection it returns.
	Addr string
	Dial func(ctx context.Context) (net.Conn, error)
	// MaxQueueBytes bounds the bytes held: queued and unacknowledged frames,
	// with their headers.
	MaxQueueBytes int
	// MaxFrameBytes bounds one frame; it must not exceed the receiver's.
	MaxFrameBytes int
	// CongestBytes is where the link reports Congested (at most half of
	// MaxQueueBytes): the bytes held that are worth queueing before the
	// publishers feeding the link are held. Lower means less latency under
	// overload, higher rides out longer stalls of the receiver.
	CongestBytes int
	// OnDrained, when set, is called (on the link's ack reader, without a
	// lock) when the bytes held fall below half of CongestBytes after the
	// link was congested: held publishers may go on.
	OnDrained func()
	// BatchBytes: the writer flushes after this many bytes even when more
	// frames are queued.
	BatchBytes int
	// BackoffMin and BackoffMax bound the wait before a redial; it doubles
	// after each connection that got no ack, and is jittered in [d/2, d].
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds one dial; WriteTimeout one flush.
	DialTimeout, WriteTimeout time.Duration
	// Logger receives the link's log lines (default: slog.Default()).
	Logger *slog.Logger
	// Key is the cluster key (16, 24 or 32 bytes; nil: none): each
	// connection starts with the cluster key handshake, within DialTimeout,
	// and the receiver must have the same key. It authenticates the
	// connection; the frames that follow are not encrypted.
	Key []byte
}

// DefaultPeerLinkConfig returns the defaults (Node, Boot and Addr unset).
func DefaultPeerLinkConfig() PeerLinkConfig {
	return PeerLinkConfig{
		MaxQueueBytes: 8 << 20,
		MaxFrameBytes: 16 << 20,
		CongestBytes:  1 << 20,
		BatchBytes:    256 << 10,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    2 * time.Second,
		DialTimeout:   5 * time.Second,
		WriteTimeout:  10 * time.Second,
	}
}

func (c *PeerLinkConfig) setDefaults() {
	d := DefaultPeerLinkConfig()
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = d.MaxQueueBytes
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.CongestBytes <= 0 {
		c.CongestBytes = d.CongestBytes
	}
	c.CongestBytes = min(c.CongestBytes, c.MaxQueueBytes/2)
	if c.BatchBytes <= 0 {
		c.BatchBytes = d.BatchBytes
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(d.BackoffMax, c.BackoffMin)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// PeerLinkStats are a link's counters, for metrics.
type PeerLinkStats struct {
	Sent       uint64 // frames written for the first time
	Replayed   uint64 // frames written again after a reconnect
	Acked      uint64 // frames freed by the receiver's acks
	QueueBytes uint64 // bytes held now (queued and unacknowledged)
	Reconnects uint64 // connections established after the first
}

// peerFrame is a queued frame: its encoded header and body in one slice.
type peerFrame struct {
	seq  uint64
	data []byte
}

// PeerLink is the sending end of the peer link to one remote node. Send,
// Stats and Close are safe for concurrent use.
//
// Goroutines: one writer (run) for the link's lifetime, which dials, writes
// and redials; one ack reader (readAcks) per connection. Close stops both and
// waits for them.
//
// Locks: mu guards the frame buffer, the connection and its generation; it
// is never held while doing I/O, and no other lock is taken under it.
type PeerLink struct {
	cfg     PeerLinkConfig
	log     *slog.Logger
	auth    *connAuth // nil without a key
	session uint64
	ctx     context.Context // cancelled by Close: stops dials and backoff
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu   sync.Mutex
	cond *sync.Cond // signalled on Send, ack, broken connection and Close
	// frames holds unacknowledged frames (frames[:sent], written on the
	// current connection) then queued ones, in seq order.
	frames  []peerFrame
	sent    int
	bytes   int    // len of every frame's data
	nextSeq uint64 // seq of the next frame Send queues
	written uint64 // highest seq ever written
	gen     uint64 // connection generation
	broken  bool   // the connection of generation gen failed
	conn    net.Conn
	closed  bool

	nSent, nReplayed, nAcked, nReconnects atomic.Uint64
	queueBytes                            atomic.Int64
	congested                             atomic.Bool // Congested said so; OnDrained not called since
}

// NewPeerLink starts a link to cfg.Addr (or cfg.Dial). It returns at once;
// the writer dials in the background and keeps redialling until Close.
func NewPeerLink(cfg PeerLinkConfig) (*PeerLink, error) {
	if len(cfg.Node) == 0 || len(cfg.Node) > maxPeerNodeID {
		return nil, fmt.Errorf("cluster: peer link: node id must be 1 to %d bytes", maxPeerNodeID)
	}
	if cfg.Addr == "" && cfg.Dial == nil {
		return nil, errors.New("cluster: peer link: no address")
	}
	if err := checkClusterKey(cfg.Key); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	l := &PeerLink{
		cfg:     cfg,
		log:     cfg.Logger.With("peer", cfg.Addr),
		auth:    newConnAuth(cfg.Key, purposePeerLink),
		session: rand.Uint64(),
		ctx:     ctx,
		cancel:  cancel,
		nextSeq: 1,
	}
	l.cond = sync.NewCond(&l.mu)
	l.wg.Add(1)
	go l.run()
	return l, nil
}

// Send queues a copy of frame. It never blocks: when the queue has no room
// it returns ErrPeerLinkFull and the frame is not queued (see
// ErrPeerLinkFull for what the caller does). Safe for concurrent use; frames
// sent by one goroutine are delivered in the order sent.
func (l *PeerLink) Send(frame []byte) error { return l.send(frame, false) }

// SendAlways queues a copy of frame even past MaxQueueBytes: for QoS 1/2
// messages, which are never dropped. The caller bounds what it adds past the
// limit: it holds its publishers while the link is Congested (CongestBytes
// held, 1 MiB by default). It fails only for a frame too large or a closed link.
// Safe for concurrent use.
func (l *PeerLink) SendAlways(frame []byte) error { return l.send(frame, true) }

// Congested reports whether the bytes held reached CongestBytes. Safe for
// concurrent use.
func (l *PeerLink) Congested() bool {
	if l.queueBytes.Load() >= int64(l.cfg.CongestBytes) {
		l.congested.Store(true)
		return true
	}
	return false
}

func (l *PeerLink) send(frame []byte, always bool) error {
	if len(frame) > l.cfg.MaxFrameBytes || peerFrameHeaderLen+len(frame) > l.cfg.MaxQueueBytes {
		return ErrPeerFrameTooLarge
	}
	size := peerFrameHeaderLen + len(frame)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrPeerLinkClosed
	}
	if !always && l.bytes+size > l.cfg.MaxQueueBytes {
		return ErrPeerLinkFull
	}
	data := make([]byte, 0, size)
	data = appendPeerFrameHeader(data, l.nextSeq, len(frame))
	data = append(data, frame...)
	l.frames = append(l.frames, peerFrame{seq: l.nextSeq, data: data})
	l.nextSeq++
	l.bytes += size
	l.queueBytes.Store(int64(l.bytes))
	if l.sent == len(l.frames)-1 {
		l.cond.Signal() // only the writer waits on cond
	}
	return nil
}

// Stats returns the link's counters. Safe for concurrent use.
func (l *PeerLink) Stats() PeerLinkStats {
	return PeerLinkStats{
		Sent:       l.nSent.Load(),
		Replayed:   l.nReplayed.Load(),
		Acked:      l.nAcked.Load(),
		QueueBytes: uint64(l.queueBytes.Load()),
		Reconnects: l.nReconnects.Load(),
	}
}

// Close stops the link and waits for its goroutines. Unacknowledged frames
// are dropped. Safe for concurrent use; later calls do nothing.
func (l *PeerLink) Close() error {
	l.mu.Lock()
	l.closed = true
	c := l.conn
	l.cond.Broadcast()
	l.mu.Unlock()
	l.cancel()
	if c != nil {
		c.Close()
	}
	l.wg.Wait()
	return nil
}

// Reset drops the current connection, if there is one: the writer redials
// and replays every unacknowledged frame. For a peer that gossip held dead
// and sees alive again: across a partition the old connection sits in TCP
// retransmission backoff, and could stay silent for seconds after the heal.
func (l *PeerLink) Reset() {
	l.mu.Lock()
	conn := l.conn
	l.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// run is the writer goroutine: dial, serve the connection, back off, redial.
func (l *PeerLink) run() {
	defer l.wg.Done()
	backoff := l.cfg.BackoffMin
	connected := false
	keyWarned := false // a failed key handshake was logged at warn since the last connection
	for {
		conn, err := l.dial()
		switch {
		case err == nil:
			if connected {
				l.nReconnects.Add(1)
			}
			connected, keyWarned = true, false
			if l.serve(conn) {
				backoff = l.cfg.BackoffMin
			}
		case l.ctx.Err() != nil:
		case errors.Is(err, ErrKeyHandshake) && !keyWarned:
			keyWarned = true
			l.log.Warn("peer link: cluster key handshake failed (has the remote node this node's key?); retrying", "err", err)
		default:
			l.log.Debug("peer link: dial failed", "err", err)
		}
		// Jittered wait in [backoff/2, backoff].
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, l.cfg.BackoffMax)
	}
}

// dial connects and runs the cluster key handshake, both within
// DialTimeout; Close interrupts either.
func (l *PeerLink) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.DialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if l.cfg.Dial != nil {
		conn, err = l.cfg.Dial(ctx)
	} else {
		d := net.Dialer{KeepAlive: 15 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", l.cfg.Addr)
	}
	if err != nil || l.auth == nil {
		return conn, err
	}
	deadline, _ := ctx.Deadline()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err = l.auth.dialSide(conn, deadline)
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	return conn, nil
}

// serve runs one connection: hello, replay, then new frames, until the
// connection breaks or the link closes. It reports whether an ack arrived.
func (l *PeerLink) serve(conn net.Conn) (gotAck bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		conn.Close()
		return false
	}
	l.gen++
	gen := l.gen
	l.conn = conn
	l.broken = false
	l.sent = 0 // replay every unacknowledged frame
	hello := peerHello{Node: l.cfg.Node, Boot: l.cfg.Boot, Session: l.session, FirstSeq: l.nextSeq}
	if len(l.frames) > 0 {
		hello.FirstSeq = l.frames[0].seq
	}
	l.mu.Unlock()

	var acked atomic.Bool
	l.wg.Add(1)
	go l.readAcks(conn, gen, &acked)
	defer func() {
		conn.Close()
		l.mu.Lock()
		if l.gen == gen {
			l.conn = nil
		}
		l.mu.Unlock()
	}()

	bw := bufio.NewWriterSize(conn, 64<<10)
	conn.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout))
	if _, err := bw.Write(appendPeerHello(nil, hello)); err != nil {
		return acked.Load()
	}
	batch := make([][]byte, 0, 128)
	for {
		l.mu.Lock()
		if bw.Buffered() > 0 && l.sent == len(l.frames) {
			// Queue momentarily empty: flush what this drain wrote.
			l.mu.Unlock()
			conn.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout))
			if err := bw.Flush(); err != nil {
				l.log.Debug("peer link: write failed", "err", err)
				return acked.Load()
			}
			continue
		}
		for !l.closed && !l.broken && l.sent == len(l.frames) {
			l.cond.Wait()
		}
		if l.closed || l.broken {
			l.mu.Unlock()
			return acked.Load()
		}
		batch = batch[:0]
		n := 0
		for l.sent < len(l.frames) && n < l.cfg.BatchBytes && len(batch) < cap(batch) {
			f := l.frames[l.sent]
			l.sent++
			if f.seq <= l.written {
				l.nReplayed.Add(1)
			} else {
				l.written = f.seq
				l.nSent.Add(1)
			}
			batch = append(batch, f.data)
			n += len(f.data)
		}
		full := l.sent < len(l.frames) && n >= l.cfg.BatchBytes
		l.mu.Unlock()

		conn.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout))
		for _, b := range batch {
			if _, err := bw.Write(b); err != nil {
				l.log.Debug("peer link: write failed", "err", err)
				return acked.Load()
			}
		}
		if full {
			if err := bw.Flush(); err != nil {
				l.log.Debug("peer link: write failed", "err", err)
				return acked.Load()
			}
		}
	}
}

// readAcks is the ack reader of connection generation gen. On any error it
// marks the connection broken, which makes the writer redial.
func (l *PeerLink) readAcks(conn net.Conn, gen uint64, acked *atomic.Bool) {
	defer l.wg.Done()
	br := bufio.NewReaderSize(conn, 512)
	var buf [peerAckLen]byte
	for {
		if _, err := io.ReadFull(br, buf[:]); err != nil {
			l.log.Debug("peer link: connection lost", "err", err)
			break
		}
		upto, err := decodePeerAck(buf[:])
		if err == nil {
			err = l.ack(gen, upto)
		}
		if l.cfg.OnDrained != nil && l.queueBytes.Load() < int64(l.cfg.CongestBytes/2) && l.congested.CompareAndSwap(true, false) {
			l.cfg.OnDrained()
		}
		if err != nil {
			l.log.Warn("peer link: closing connection", "err", err)
			break
		}
		acked.Store(true)
	}
	conn.Close()
	l.mu.Lock()
	if l.gen == gen {
		l.broken = true
		l.cond.Broadcast()
	}
	l.mu.Unlock()
}

// ack frees every frame with seq <= upto.
func (l *PeerLink) ack(gen, upto uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return nil // a late ack of an old connection: the new one will ack
	}
	if upto >= l.nextSeq {
		return &peerWireError{msg: "ack: beyond the last frame sent"}
	}
	k, freed := 0, 0
	for k < len(l.frames) && l.frames[k].seq <= upto {
		freed += len(l.frames[k].data)
		l.frames[k].data = nil
		k++
	}
	if k == 0 {
		return nil
	}
	l.frames = l.frames[k:]
	if len(l.frames) == 0 {
		l.frames = nil // let the array go
	}
	// Acks may cover frames delivered on an earlier connection and not yet
	// written again on this one.
	l.sent = max(0, l.sent-k)
	l.bytes -= freed
	l.queueBytes.Store(int64(l.bytes))
	l.nAcked.Add(uint64(k))
	return nil
}

// PeerListenerConfig configures the receiving end. Zero fields take the
// values of DefaultPeerListenerConfig.
type PeerListenerConfig struct {
	// MaxFrameBytes bounds one frame; a longer one closes the connection.
	MaxFrameBytes int
	// AckEvery and AckDelay: an ack goes out after AckEvery frames or
	// AckDelay after the first unacknowledged one, whichever comes first.
	AckEvery int
	AckDelay time.Duration
	// HandshakeTimeout bounds the wait for the hello; WriteTimeout one ack.
	HandshakeTimeout, WriteTimeout time.Duration
	// Logger receives the listener's log lines (default: slog.Default()).
	Logger *slog.Logger
	// Key is the cluster key (nil: none): a connection must pass the
	// cluster key handshake, within HandshakeTimeout, before its hello is
	// read; one that fails is closed, logged (rate limited) and counted
	// (PeerListenerStats.KeyRefused).
	Key []byte
}

// DefaultPeerListenerConfig returns the defaults.
func DefaultPeerListenerConfig() PeerListenerConfig {
	return PeerListenerConfig{
		MaxFrameBytes:    16 << 20,
		AckEvery:         64,
		AckDelay:         5 * time.Millisecond,
		HandshakeTimeout: 10 * time.Second,
		WriteTimeout:     10 * time.Second,
	}
}

func (c *PeerListenerConfig) setDefaults() {
	d := DefaultPeerListenerConfig()
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.AckEvery <= 0 {
		c.AckEvery = d.AckEvery
	}
	if c.AckDelay <= 0 {
		c.AckDelay = d.AckDelay
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// PeerListenerStats are the receiving end's counters, for metrics.
type PeerListenerStats struct {
	Delivered  uint64 // frames handed to deliver
	Duplicates uint64 // replayed frames dropped as already delivered
	BadConns   uint64 // connections closed for malformed or refused input
	KeyRefused uint64 // connections refused for a failed cluster key handshake
}

// peerSender is the receive state of one sender node's current (boot,
// session).
type peerSender struct {
	boot, session uint64
	conn          net.Conn // its newest connection; guarded by PeerListener.mu

	mu        sync.Mutex    // held while delivering: one frame at a time
	delivered atomic.Uint64 // last delivered seq; written under mu
}

// PeerListener is the receiving end of the peer links of every other node.
// Stats and Close are safe for concurrent use.
//
// Goroutines: one accept loop; per connection one reader, which delivers,
// and one ack writer. Close stops them all and waits; it waits for a
// deliver call in progress too, so deliver must return.
//
// Locks: mu (the sender table and the set of connections), then
// peerSender.mu (delivery); deliver is called with peerSender.mu held and
// must not call back into the listener.
type PeerListener struct {
	ln      net.Listener
	cfg     PeerListenerConfig
	log     *slog.Logger
	gate    *keyGate // nil without a key
	deliver func(from string, frame []byte)
	wg      sync.WaitGroup

	mu      sync.Mutex
	senders map[string]*peerSender
	conns   map[net.Conn]struct{}
	closed  bool

	nDelivered, nDuplicates, nBadConns atomic.Uint64
}

// ServePeerLink serves peer links on ln with the default configuration; see
// ServePeerLinkConfig.
func ServePeerLink(ln net.Listener, deliver func(from string, frame []byte)) *PeerListener {
	return ServePeerLinkConfig(ln, PeerListenerConfig{}, deliver)
}

// ServePeerLinkConfig accepts peer link connections on ln until Close and
// calls deliver with every frame, exactly once per sender (boot, session)
// and in seq order. from is the sender's node id. frame is borrowed: it is
// valid until deliver returns, so deliver copies what it keeps. Frames are
// acked once deliver has returned. deliver is called from one goroutine per
// connection, never concurrently for one sender.
func ServePeerLinkConfig(ln net.Listener, cfg PeerListenerConfig, deliver func(from string, frame []byte)) *PeerListener {
	cfg.setDefaults()
	pl := &PeerListener{
		ln:      ln,
		cfg:     cfg,
		log:     cfg.Logger,
		gate:    newKeyGate(cfg.Key, purposePeerLink, "peer link", cfg.HandshakeTimeout, cfg.Logger),
		deliver: deliver,
		senders: make(map[string]*peerSender),
		conns:   make(map[net.Conn]struct{}),
	}
	pl.wg.Add(1)
	go pl.accept()
	return pl
}

// Addr returns the listener's address. Safe for concurrent use.
func (pl *PeerListener) Addr() net.Addr { return pl.ln.Addr() }

// Stats returns the listener's counters. Safe for concurrent use.
func (pl *PeerListener) Stats() PeerListenerStats {
	return PeerListenerStats{
		Delivered:  pl.nDelivered.Load(),
		Duplicates: pl.nDuplicates.Load(),
		BadConns:   pl.nBadConns.Load(),
		KeyRefused: pl.gate.Refused(),
	}
}

// Close closes the listener and every connection and waits for the
// goroutines. Safe for concurrent use.
func (pl *PeerListener) Close() error {
	pl.mu.Lock()
	pl.closed = true
	for c := range pl.conns {
		c.Close()
	}
	pl.mu.Unlock()
	err := pl.ln.Close()
	pl.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (pl *PeerListener) accept() {
	defer pl.wg.Done()
	delay := 5 * time.Millisecond
	for {
		conn, err := pl.ln.Accept()
		if err != nil {
			pl.mu.Lock()
			closed := pl.closed
			pl.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry.
			pl.log.Warn("peer link: accept failed", "err", err)
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		pl.mu.Lock()
		if pl.closed {
			pl.mu.Unlock()
			conn.Close()
			return
		}
		pl.conns[conn] = struct{}{}
		pl.wg.Add(1)
		pl.mu.Unlock()
		go pl.serveConn(conn)
	}
}

// bad logs why a connection is closed for its input and counts it.
func (pl *PeerListener) bad(conn net.Conn, from string, err error) {
	pl.nBadConns.Add(1)
	pl.log.Warn("peer link: closing connection on bad input", "remote", conn.RemoteAddr().String(), "from", from, "err", err)
}

// serveConn is the reader goroutine of one connection.
func (pl *PeerListener) serveConn(conn net.Conn) {
	defer pl.wg.Done()
	defer func() {
		conn.Close()
		pl.mu.Lock()
		delete(pl.conns, conn)
		pl.mu.Unlock()
	}()
	if !pl.gate.admit(conn) {
		return
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(pl.cfg.HandshakeTimeout))
	h, err := readPeerHello(br)
	if err != nil {
		if errors.Is(err, ErrPeerWire) {
			pl.bad(conn, "", err)
		} else {
			pl.log.Debug("peer link: no hello", "remote", conn.RemoteAddr().String(), "err", err)
		}
		return
	}
	conn.SetReadDeadline(time.Time{})
	ps, err := pl.attach(conn, h)
	if err != nil {
		pl.bad(conn, h.Node, err)
		return
	}

	kick := make(chan struct{}, 1) // the first unacked frame arrived
	full := make(chan struct{}, 1) // AckEvery frames arrived
	done := make(chan struct{})
	var pending atomic.Int64
	pl.wg.Add(1)
	go pl.writeAcks(conn, ps, &pending, kick, full, done)
	defer close(done)

	var buf []byte
	for {
		seq, body, nb, err := readPeerFrame(br, buf, pl.cfg.MaxFrameBytes)
		buf = nb
		if err != nil {
			if errors.Is(err, ErrPeerWire) {
				pl.bad(conn, h.Node, err)
			} else {
				pl.log.Debug("peer link: connection lost", "from", h.Node, "err", err)
			}
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // keep no large buffer between large frames
		}
		ps.mu.Lock()
		last := ps.delivered.Load()
		switch {
		case seq <= last:
			pl.nDuplicates.Add(1)
		case seq == last+1:
			pl.deliver(h.Node, body)
			ps.delivered.Store(seq)
			pl.nDelivered.Add(1)
		default:
			ps.mu.Unlock()
			pl.bad(conn, h.Node, fmt.Errorf("%w: frame %d after %d: gap", ErrPeerWire, seq, last))
			return
		}
		ps.mu.Unlock()
		switch n := pending.Add(1); {
		case n == 1:
			select {
			case kick <- struct{}{}:
			default:
			}
		case n >= int64(pl.cfg.AckEvery):
			select {
			case full <- struct{}{}:
			default:
			}
		}
	}
}

// attach finds or makes the receive state for hello h on conn, and closes
// the sender's previous connection: a sender has one live connection.
func (pl *PeerListener) attach(conn net.Conn, h peerHello) (*peerSender, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	ps := pl.senders[h.Node]
	switch {
	case ps != nil && h.Boot < ps.boot:
		return nil, fmt.Errorf("%w: hello from boot %d, boot %d already seen", ErrPeerWire, h.Boot, ps.boot)
	case ps == nil || h.Boot != ps.boot || h.Session != ps.session:
		// New sender, restarted sender or new link session: start over.
		if ps != nil && ps.conn != nil {
			ps.conn.Close()
		}
		ps = &peerSender{boot: h.Boot, session: h.Session}
		ps.delivered.Store(h.FirstSeq - 1)
		pl.senders[h.Node] = ps
	default:
		// Reconnect of the same session: replayed frames are dropped by seq.
		if ps.conn != nil {
			ps.conn.Close()
		}
		ps.mu.Lock()
		if last := ps.delivered.Load(); h.FirstSeq > last+1 {
			// The sender freed frames this listener never acked: a bug on
			// one side. Say so, and go on from where the sender is.
			pl.log.Error("peer link: frames lost", "from", h.Node, "delivered", last, "first", h.FirstSeq)
			ps.delivered.Store(h.FirstSeq - 1)
		}
		ps.mu.Unlock()
	}
	ps.conn = conn
	return ps, nil
}

// writeAcks is the ack writer of one connection: an ack right away, then
// one AckDelay after the first unacked frame or after AckEvery frames.
func (pl *PeerListener) writeAcks(conn net.Conn, ps *peerSender, pending *atomic.Int64, kick, full, done <-chan struct{}) {
	defer pl.wg.Done()
	var buf [peerAckLen]byte
	write := func() bool {
		conn.SetWriteDeadline(time.Now().Add(pl.cfg.WriteTimeout))
		if _, err := conn.Write(appendPeerAck(buf[:0], ps.delivered.Load())); err != nil {
			conn.Close() // the reader sees it and ends the connection
			return false
		}
		return true
	}
	if !write() {
		return
	}
	t := time.NewTimer(pl.cfg.AckDelay)
	t.Stop()
	for {
		select {
		case <-kick:
		case <-done:
			return
		}
		t.Reset(pl.cfg.AckDelay)
		select {
		case <-t.C:
		case <-full:
			t.Stop()
		case <-done:
			t.Stop()
			return
		}
		pending.Store(0)
		if !write() {
			return
		}
	}
}
