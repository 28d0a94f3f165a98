package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// peerRecorder collects delivered frames per sender, copied.
type peerRecorder struct {
	mu  sync.Mutex
	got map[string][][]byte
}

func newPeerRecorder() *peerRecorder { return &peerRecorder{got: make(map[string][][]byte)} }

func (r *peerRecorder) deliver(from string, frame []byte) {
	r.mu.Lock()
	r.got[from] = append(r.got[from], bytes.Clone(frame))
	r.mu.Unlock()
}

func (r *peerRecorder) count(from string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[from])
}

func (r *peerRecorder) frames(from string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got[from]...)
}

// testPeerFrame is frame i of a test: its index and i%1500 filler bytes.
func testPeerFrame(i int) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(i))
	return append(b, bytes.Repeat([]byte{byte(i)}, i%1500)...)
}

// checkPeerFrames fails unless got is exactly frames first..first+n-1.
func checkPeerFrames(t *testing.T, got [][]byte, first, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d frames, want %d", len(got), n)
	}
	for k, f := range got {
		if want := testPeerFrame(first + k); !bytes.Equal(f, want) {
			idx := -1
			if len(f) >= 8 {
				idx = int(binary.BigEndian.Uint64(f))
			}
			t.Fatalf("frame %d is frame %d (len %d), want %d", k, idx, len(f), first+k)
		}
	}
}

func startPeerListener(t *testing.T, cfg PeerListenerConfig, deliver func(string, []byte)) *PeerListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := ServePeerLinkConfig(ln, cfg, deliver)
	t.Cleanup(func() { pl.Close() })
	return pl
}

func startPeerLink(t *testing.T, cfg PeerLinkConfig) *PeerLink {
	t.Helper()
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = time.Millisecond, 20*time.Millisecond
	}
	l, err := NewPeerLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// trySendAll sends frames first..first+n-1, retrying while the queue is full.
func trySendAll(l *PeerLink, first, n int) error {
	deadline := time.Now().Add(20 * time.Second)
	for i := first; i < first+n; i++ {
		for {
			err := l.Send(testPeerFrame(i))
			if err == nil {
				break
			}
			if !errors.Is(err, ErrPeerLinkFull) || time.Now().After(deadline) {
				return fmt.Errorf("send %d: %w", i, err)
			}
			time.Sleep(200 * time.Microsecond) // retry pace, not a state wait
		}
	}
	return nil
}

func sendAll(t *testing.T, l *PeerLink, first, n int) {
	t.Helper()
	if err := trySendAll(l, first, n); err != nil {
		t.Fatal(err)
	}
}

// unacked returns the number of frames held (tests).
func (l *PeerLink) unacked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.frames)
}

// waitDrained waits until every frame l queued was acked.
func waitDrained(t *testing.T, l *PeerLink, n int) {
	t.Helper()
	waitUntil(t, 10*time.Second, "all frames acked", func() bool {
		s := l.Stats()
		return s.Acked == uint64(n) && s.QueueBytes == 0 && l.unacked() == 0
	})
}

// TestPeerLinkDeliversInOrder: two senders' frames arrive in order, once, and
// acks empty both links' buffers.
func TestPeerLinkDeliversInOrder(t *testing.T) {
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{}, rec.deliver)
	const n = 3000
	links := map[string]*PeerLink{}
	for _, node := range []string{"n1", "n2"} {
		links[node] = startPeerLink(t, PeerLinkConfig{Node: node, Boot: 1, Addr: pl.Addr().String()})
	}
	errs := make(chan error, len(links))
	for _, l := range links {
		go func() { errs <- trySendAll(l, 0, n) }()
	}
	for range links {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for node, l := range links {
		waitUntil(t, 10*time.Second, node+" frames delivered", func() bool { return rec.count(node) >= n })
		checkPeerFrames(t, rec.frames(node), 0, n)
		waitDrained(t, l, n)
		if s := l.Stats(); s.Sent != n || s.Replayed != 0 || s.Reconnects != 0 {
			t.Fatalf("%s stats %+v", node, s)
		}
	}
	if s := pl.Stats(); s.Delivered != 2*n || s.Duplicates != 0 || s.BadConns != 0 {
		t.Fatalf("listener stats %+v", s)
	}
}

// TestPeerLinkFullQueue: with deliver held, the byte-bounded queue fills and
// Send fails at once; acks after deliver resumes make room again.
func TestPeerLinkFullQueue(t *testing.T) {
	rec := newPeerRecorder()
	gate := make(chan struct{})
	pl := startPeerListener(t, PeerListenerConfig{}, func(from string, f []byte) {
		<-gate
		rec.deliver(from, f)
	})
	l := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 1, Addr: pl.Addr().String(), MaxQueueBytes: 32 << 10, MaxFrameBytes: 8 << 10})
	defer close(gate) // before the cleanups close the listener

	if err := l.Send(make([]byte, 8<<10+1)); !errors.Is(err, ErrPeerFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	frame := func(i int) []byte { // 1 KiB frames
		b := binary.BigEndian.AppendUint64(nil, uint64(i))
		return append(b, make([]byte, 1016)...)
	}
	sent := 0
	for ; ; sent++ {
		err := l.Send(frame(sent))
		if errors.Is(err, ErrPeerLinkFull) {
			break
		}
		if err != nil || sent > 100 {
			t.Fatalf("send %d: %v", sent, err)
		}
	}
	if want := (32 << 10) / (1024 + peerFrameHeaderLen); sent != want {
		t.Fatalf("queue took %d frames, want %d", sent, want)
	}
	if q := l.Stats().QueueBytes; q != uint64(sent*(1024+peerFrameHeaderLen)) {
		t.Fatalf("queue bytes %d", q)
	}
	if err := l.Send(frame(sent)); !errors.Is(err, ErrPeerLinkFull) {
		t.Fatalf("send on a full queue: %v", err)
	}
	gate <- struct{}{} // let one frame through; its ack frees its room
	waitUntil(t, 5*time.Second, "room after an ack", func() bool { return l.Send(frame(sent)) == nil })
	sent++
	for range sent - 1 {
		gate <- struct{}{}
	}
	waitDrained(t, l, sent)
	got := rec.frames("n1")
	if len(got) != sent {
		t.Fatalf("delivered %d of %d", len(got), sent)
	}
	for i, f := range got {
		if !bytes.Equal(f, frame(i)) {
			t.Fatalf("frame %d out of order", i)
		}
	}
}

// cutProxy forwards TCP connections to target and, for the first cuts of
// them, drops the connection after a random number of bytes in one direction.
type cutProxy struct {
	ln     net.Listener
	target string
	cuts   atomic.Int64
	rng    *rand.Rand // accept goroutine only
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startCutProxy(t *testing.T, target string, cuts int, seed uint64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, rng: rand.New(rand.NewPCG(seed, seed)), conns: map[net.Conn]struct{}{}}
	p.cuts.Store(int64(cuts))
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c) || !p.track(b) {
			c.Close()
			b.Close()
			continue
		}
		fwd, rev := -1, -1
		if p.cuts.Add(-1) >= 0 {
			if p.rng.IntN(4) == 0 {
				rev = p.rng.IntN(3 * peerAckLen) // acks: cut in the first few
			} else {
				fwd = p.rng.IntN(96 << 10) // frames: cut anywhere, the hello too
			}
		}
		p.wg.Add(2)
		go p.pipe(b, c, fwd)
		go p.pipe(c, b, rev)
	}
}

// pipe copies src to dst; after limit bytes (when >= 0) or an error it
// closes both.
func (p *cutProxy) pipe(dst, src net.Conn, limit int) {
	defer p.wg.Done()
	defer func() { dst.Close(); src.Close() }()
	buf := make([]byte, 4096)
	total := 0
	for {
		n, err := src.Read(buf)
		if limit >= 0 && total+n >= limit {
			dst.Write(buf[:limit-total])
			return
		}
		total += n
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *cutProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// TestPeerLinkReconnectExactlyOnce: a proxy drops the connection at random
// points, frames or acks, many times; every frame still arrives exactly once
// and in order.
func TestPeerLinkReconnectExactlyOnce(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	log, _ := captureLog(slog.LevelWarn)
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{Logger: log}, rec.deliver)
	const cuts = 12
	p := startCutProxy(t, pl.Addr().String(), cuts, seed)
	var d net.Dialer
	dial := func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", p.ln.Addr().String()) }
	l := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 7, Dial: dial, MaxQueueBytes: 256 << 10, Logger: log})

	const n = 4000
	sendAll(t, l, 0, n)
	waitUntil(t, 20*time.Second, "frames delivered", func() bool { return rec.count("n1") >= n })
	waitDrained(t, l, n)
	checkPeerFrames(t, rec.frames("n1"), 0, n)
	s := l.Stats()
	t.Logf("link %+v listener %+v", s, pl.Stats())
	if s.Reconnects < 3 || s.Sent != n {
		t.Fatalf("stats %+v: want >= 3 reconnects and %d frames sent", s, n)
	}
	if pl.Stats().BadConns != 0 {
		t.Fatalf("listener stats %+v", pl.Stats())
	}
}

// TestPeerLinkServerDropsConn: the receiver closes the link's connection
// mid-stream, repeatedly; nothing is lost or duplicated.
func TestPeerLinkServerDropsConn(t *testing.T) {
	rec := newPeerRecorder()
	var plp atomic.Pointer[PeerListener]
	var drops atomic.Int64
	pl := startPeerListener(t, PeerListenerConfig{}, func(from string, f []byte) {
		rec.deliver(from, f)
		if rec.count(from)%500 == 250 {
			drops.Add(1)
			// Test only: close the sender's connection. Not from deliver
			// itself, which holds the sender's lock (lock order).
			pl := plp.Load()
			go func() {
				pl.mu.Lock()
				pl.senders[from].conn.Close()
				pl.mu.Unlock()
			}()
		}
	})
	plp.Store(pl)
	l := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 1, Addr: pl.Addr().String()})
	const n = 3000
	sendAll(t, l, 0, n)
	waitUntil(t, 10*time.Second, "frames delivered", func() bool { return rec.count("n1") >= n })
	waitDrained(t, l, n)
	checkPeerFrames(t, rec.frames("n1"), 0, n)
	// The closes run on their own goroutines: two of them may hit the same
	// connection, so only one reconnect is certain.
	if s := l.Stats(); s.Reconnects < 1 || drops.Load() != 6 {
		t.Fatalf("stats %+v after %d drops", s, drops.Load())
	}
}

// rawPeerConn is a hand-driven sender connection.
type rawPeerConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRawPeer(t *testing.T, addr string) *rawPeerConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeerConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *rawPeerConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawPeerConn) frames(from, to int) {
	r.t.Helper()
	var b []byte
	for i := from; i <= to; i++ {
		f := testPeerFrame(i)
		b = appendPeerFrameHeader(b, uint64(i+1), len(f))
		b = append(b, f...)
	}
	r.write(b)
}

// waitAck reads acks until one covers upto.
func (r *rawPeerConn) waitAck(upto uint64) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf [peerAckLen]byte
	for {
		if _, err := io.ReadFull(r.r, buf[:]); err != nil {
			r.t.Fatalf("waiting for ack %d: %v", upto, err)
		}
		got, err := decodePeerAck(buf[:])
		if err != nil {
			r.t.Fatal(err)
		}
		if got >= upto {
			return
		}
	}
}

// waitClosed fails unless the listener closes the connection (after acks).
func (r *rawPeerConn) waitClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, r.r); err != nil && !errors.Is(err, net.ErrClosed) && !isConnReset(err) {
		r.t.Fatalf("connection not closed by the listener: %v", err)
	}
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// TestPeerLinkReplayDedup: a reconnect of the same (boot, session) replays
// frames the listener has delivered; they are dropped by seq. A gap closes
// the connection.
func TestPeerLinkReplayDedup(t *testing.T) {
	log, buf := captureLog(slog.LevelWarn)
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{Logger: log}, rec.deliver)
	hello := peerHello{Node: "n9", Boot: 3, Session: 42, FirstSeq: 1}

	a := dialRawPeer(t, pl.Addr().String())
	a.write(appendPeerHello(nil, hello))
	a.frames(0, 2) // seq 1..3
	a.waitAck(3)
	a.c.Close()

	b := dialRawPeer(t, pl.Addr().String())
	hello.FirstSeq = 2
	b.write(appendPeerHello(nil, hello))
	b.frames(1, 4) // seq 2..5: 2 and 3 again
	b.waitAck(5)
	checkPeerFrames(t, rec.frames("n9"), 0, 5)
	if s := pl.Stats(); s.Duplicates != 2 || s.Delivered != 5 {
		t.Fatalf("stats %+v", s)
	}
	b.frames(6, 6) // seq 7 after 5
	b.waitClosed()
	waitUntil(t, 5*time.Second, "gap logged", func() bool { return buf.hasLine("closing connection on bad input", "gap") })
	checkPeerFrames(t, rec.frames("n9"), 0, 5)
}

// TestPeerLinkNewBootStartsOver: a restarted sender (larger boot) and a new
// link session start at seq 1 again; an older boot is refused.
func TestPeerLinkNewBootStartsOver(t *testing.T) {
	log, buf := captureLog(slog.LevelWarn)
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{Logger: log}, rec.deliver)
	addr := pl.Addr().String()

	l1 := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 5, Addr: addr})
	sendAll(t, l1, 0, 50)
	waitDrained(t, l1, 50)
	l1.Close()

	l2 := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 6, Addr: addr}) // restarted
	sendAll(t, l2, 50, 20)
	waitDrained(t, l2, 20)
	l2.Close()

	l3 := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 6, Addr: addr}) // new session, same boot
	sendAll(t, l3, 70, 10)
	waitDrained(t, l3, 10)
	l3.Close()
	checkPeerFrames(t, rec.frames("n1"), 0, 80)

	old := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 5, Addr: addr, Logger: log}) // a zombie of boot 5
	if err := old.Send(testPeerFrame(99)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "old boot refused", func() bool {
		return pl.Stats().BadConns >= 2 && buf.hasLine("closing connection on bad input", "boot 6 already seen")
	})
	old.Close()
	if s := old.Stats(); s.Acked != 0 {
		t.Fatalf("old boot got acks: %+v", s)
	}
	checkPeerFrames(t, rec.frames("n1"), 0, 80)
}

// TestPeerLinkMalformedInput: bad hellos and frame headers close only their
// own connection, with a log line; a good link keeps going.
func TestPeerLinkMalformedInput(t *testing.T) {
	log, buf := captureLog(slog.LevelWarn)
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{Logger: log, MaxFrameBytes: 4096}, rec.deliver)
	l := startPeerLink(t, PeerLinkConfig{Node: "good", Boot: 1, Addr: pl.Addr().String(), MaxFrameBytes: 4096})
	sendAll(t, l, 0, 100)

	hello := appendPeerHello(nil, peerHello{Node: "bad", Boot: 1, Session: 1, FirstSeq: 1})
	cases := []struct {
		name, logs string
		input      []byte
	}{
		{"garbage", "wrong message type", []byte("GET / HTTP/1.1\r\nHost: peer.example\r\nAccept: */*\r\n\r\n")},
		{"bad magic", "wrong magic", append([]byte{peerMsgHello, 'X'}, hello[2:]...)},
		{"empty node", "empty node id", append(bytes.Clone(hello[:peerHelloFixedLen-1]), 0)},
		{"first seq 0", "first seq 0", appendPeerHello(nil, peerHello{Node: "bad", Boot: 1, Session: 1})},
		{"oversized frame", "longer than the limit", appendPeerFrameHeader(bytes.Clone(hello), 1, 4097)},
		{"seq 0", "seq 0", appendPeerFrameHeader(bytes.Clone(hello), 0, 1)},
		{"ack instead of frame", "frame: wrong message type", append(appendPeerAck(bytes.Clone(hello), 1), 0, 0, 0, 0)},
	}
	for i, tc := range cases {
		c := dialRawPeer(t, pl.Addr().String())
		c.write(tc.input)
		c.waitClosed()
		waitUntil(t, 5*time.Second, tc.name+" logged", func() bool {
			return pl.Stats().BadConns == uint64(i+1) && buf.hasLine("closing connection on bad input", tc.logs)
		})
	}
	sendAll(t, l, 100, 100)
	waitUntil(t, 10*time.Second, "good frames delivered", func() bool { return rec.count("good") >= 200 })
	waitDrained(t, l, 200)
	checkPeerFrames(t, rec.frames("good"), 0, 200)
	if s := l.Stats(); s.Reconnects != 0 {
		t.Fatalf("the good link reconnected: %+v", s)
	}
}

// TestPeerLinkWireRoundTrip: encoders and decoders agree, and every
// truncation is io.ErrUnexpectedEOF.
func TestPeerLinkWireRoundTrip(t *testing.T) {
	h := peerHello{Node: "node-1", Boot: 1 << 40, Session: 99, FirstSeq: 12345}
	b := appendPeerHello(nil, h)
	got, n, err := decodePeerHello(b)
	if err != nil || n != len(b) || got != h {
		t.Fatalf("hello: %+v %d %v", got, n, err)
	}
	for i := range len(b) {
		if _, _, err := decodePeerHello(b[:i]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("hello cut at %d: %v", i, err)
		}
	}
	fh := appendPeerFrameHeader(nil, 7, 300)
	if seq, n, err := decodePeerFrameHeader(fh); err != nil || seq != 7 || n != 300 || len(fh) != peerFrameHeaderLen {
		t.Fatalf("frame header: %d %d %v", seq, n, err)
	}
	ack := appendPeerAck(nil, 1<<63)
	if upto, err := decodePeerAck(ack); err != nil || upto != 1<<63 || len(ack) != peerAckLen {
		t.Fatalf("ack: %d %v", upto, err)
	}
}

// chunkReader returns its data in pieces whose lengths come from cuts.
type chunkReader struct {
	data []byte
	cuts []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.cuts) > 0 {
		n = min(n, int(r.cuts[0])+1)
		r.cuts = r.cuts[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzPeerWire: the stream decoder, fed any bytes split at any points, never
// panics, fails only with io errors or ErrPeerWire, and what it accepts
// encodes back to the same bytes.
func FuzzPeerWire(f *testing.F) {
	stream := appendPeerHello(nil, peerHello{Node: "n1", Boot: 2, Session: 3, FirstSeq: 1})
	for i := range 3 {
		fr := testPeerFrame(i * 7)
		stream = appendPeerFrameHeader(stream, uint64(i+1), len(fr))
		stream = append(stream, fr...)
	}
	f.Add(stream, []byte{0, 5, 200})
	f.Add(stream[:40], []byte{})
	f.Add(appendPeerAck(nil, 5), []byte{1})
	f.Add(appendPeerFrameHeader(bytes.Clone(stream[:32]), 1, 1<<30), []byte{3})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		if up, err := decodePeerAck(data); err == nil && !bytes.Equal(appendPeerAck(nil, up), data[:peerAckLen]) {
			t.Fatal("ack does not round-trip")
		}
		r := bufio.NewReaderSize(&chunkReader{data: data, cuts: cuts}, 16)
		h, err := readPeerHello(r)
		if err != nil {
			if !errors.Is(err, ErrPeerWire) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("hello: unexpected error %v", err)
			}
			return
		}
		enc := appendPeerHello(nil, h)
		if !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatal("hello does not round-trip")
		}
		var buf []byte
		off := len(enc)
		for {
			seq, body, nb, err := readPeerFrame(r, buf, 1024)
			buf = nb
			if err != nil {
				if !errors.Is(err, ErrPeerWire) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("frame: unexpected error %v", err)
				}
				return
			}
			if len(body) > 1024 {
				t.Fatalf("frame of %d bytes passed a 1024 limit", len(body))
			}
			enc := append(appendPeerFrameHeader(nil, seq, len(body)), body...)
			if !bytes.Equal(enc, data[off:off+len(enc)]) {
				t.Fatal("frame does not round-trip")
			}
			off += len(enc)
		}
	})
}

// TestPeerLinkReset: Reset drops the connection; the link redials, and every
// frame sent before and after arrives once and in order.
func TestPeerLinkReset(t *testing.T) {
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{}, rec.deliver)
	l := startPeerLink(t, PeerLinkConfig{Node: "n1", Boot: 1, Addr: pl.Addr().String()})
	sendAll(t, l, 0, 100)
	waitUntil(t, 10*time.Second, "first frames delivered", func() bool { return rec.count("n1") >= 100 })
	l.Reset()
	waitUntil(t, 10*time.Second, "a new connection", func() bool { return l.Stats().Reconnects == 1 })
	sendAll(t, l, 100, 100)
	waitUntil(t, 10*time.Second, "all frames delivered", func() bool { return rec.count("n1") >= 200 })
	checkPeerFrames(t, rec.frames("n1"), 0, 200)
	waitDrained(t, l, 200)
}
