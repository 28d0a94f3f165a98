package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/routing"
)

var (
	testKey      = bytes.Repeat([]byte{0x5a}, 32)
	testOtherKey = bytes.Repeat([]byte{0xa5}, 32)
)

func TestParseClusterKey(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		raw := bytes.Repeat([]byte{byte(n)}, n)
		s := base64.StdEncoding.EncodeToString(raw)
		for _, in := range []string{s, " " + s + "\n"} {
			got, err := ParseClusterKey(in)
			if err != nil || !bytes.Equal(got, raw) {
				t.Errorf("ParseClusterKey(%q) = %x, %v; want %x", in, got, err, raw)
			}
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"  \n", "empty"},
		{"not base64!", "not base64"},
		{base64.StdEncoding.EncodeToString(make([]byte, 8)), "8 bytes; it must be 16, 24 or 32"},
		{base64.StdEncoding.EncodeToString(make([]byte, 33)), "33 bytes"},
		{base64.RawStdEncoding.EncodeToString(make([]byte, 32)), "not base64"}, // unpadded
	} {
		_, err := ParseClusterKey(c.in)
		if !errors.Is(err, ErrClusterKey) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseClusterKey(%q) error %v; want ErrClusterKey saying %q", c.in, err, c.want)
		}
	}
	if err := checkClusterKey(nil); err != nil {
		t.Errorf("nil key: %v", err)
	}
	if err := checkClusterKey([]byte{}); !errors.Is(err, ErrClusterKey) {
		t.Errorf("empty non-nil key: %v", err)
	}
}

// TestStartWithBadKeyLength: StartNode, OpenRaft, StartGossip and
// NewPeerLink refuse a key of the wrong length.
func TestStartWithBadKeyLength(t *testing.T) {
	bad := make([]byte, 20)
	if _, err := StartNode(NodeConfig{ID: "n", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Logger: quiet, Key: bad}); !errors.Is(err, ErrClusterKey) {
		t.Errorf("StartNode: %v", err)
	}
	if _, err := OpenRaft(RaftConfig{NodeID: "n", Dir: t.TempDir(), Bind: "127.0.0.1:0", Logger: quiet, Key: bad}, &sumFSM{}); !errors.Is(err, ErrClusterKey) {
		t.Errorf("OpenRaft: %v", err)
	}
	if _, err := NewPeerLink(PeerLinkConfig{Node: "n", Addr: "127.0.0.1:1", Key: bad}); !errors.Is(err, ErrClusterKey) {
		t.Errorf("NewPeerLink: %v", err)
	}
	if _, err := StartGossip(GossipConfig{NodeID: "n", BindAddr: "127.0.0.1", Routes: routing.NewLocalRoutes("n", 1, 0),
		Remote: routing.NewRemoteRoutes(), Logger: quiet, Key: bad}); !errors.Is(err, ErrClusterKey) {
		t.Errorf("StartGossip: %v", err)
	}
}

// handshakePair runs client and server sides over a loopback TCP connection
// and returns their errors.
func handshakePair(t *testing.T, client, server *connAuth) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		done <- server.serverHandshake(c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cerr = client.dialSide(c, time.Now().Add(5*time.Second))
	c.Close() // a failed client hangs up, as dial does
	return cerr, <-done
}

func TestKeyHandshake(t *testing.T) {
	peer := newConnAuth(testKey, purposePeerLink)
	cerr, serr := handshakePair(t, peer, newConnAuth(testKey, purposePeerLink))
	if cerr != nil || serr != nil {
		t.Fatalf("same key: client %v, server %v", cerr, serr)
	}
	for _, c := range []struct {
		name           string
		client, server *connAuth
		cwant, swant   string
	}{
		{"other key", newConnAuth(testOtherKey, purposePeerLink), peer, "another cluster key", "no answer"},
		{"other port", newConnAuth(testKey, purposeRaft), peer, "another cluster key", "no answer"},
	} {
		cerr, serr := handshakePair(t, c.client, c.server)
		if !errors.Is(cerr, ErrKeyHandshake) || !strings.Contains(cerr.Error(), c.cwant) {
			t.Errorf("%s: client error %v; want %q", c.name, cerr, c.cwant)
		}
		if !errors.Is(serr, ErrKeyHandshake) || !strings.Contains(serr.Error(), c.swant) {
			t.Errorf("%s: server error %v; want %q", c.name, serr, c.swant)
		}
	}
}

// scriptConn is one side of a handshake scripted by the test: it reads
// from in and records what the other side wrote.
type scriptConn struct {
	io.Reader
	out bytes.Buffer
}

func (s *scriptConn) Write(p []byte) (int, error) { return s.out.Write(p) }

// TestKeyHandshakeServerRefuses: the accepting side refuses a plaintext
// peer (a node without a key), a wrong answer, a replayed answer, and every
// truncated handshake.
func TestKeyHandshakeServerRefuses(t *testing.T) {
	a := newConnAuth(testKey, purposePeerLink)
	hello := append([]byte(keyMagic), bytes.Repeat([]byte{7}, keyNonceLen)...)
	for _, c := range []struct {
		name, want string
		in         []byte
	}{
		{"peer link hello of a node without a key", "not a cluster key handshake", appendPeerHello(nil, peerHello{Node: "x", Boot: 1, Session: 1, FirstSeq: 1})},
		{"raft stream type", "not a cluster key handshake", []byte{streamRaft, 0, 0, 0, 0}},
		{"wrong answer", "wrong cluster key", append(append([]byte(nil), hello...), make([]byte, keyMACLen)...)},
		{"answer of the acceptor's role", "wrong cluster key", append(append([]byte(nil), hello...), a.sum('S', make([]byte, keyNonceLen), hello[4:])...)},
	} {
		err := a.serverHandshake(&scriptConn{Reader: bytes.NewReader(c.in)})
		if !errors.Is(err, ErrKeyHandshake) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
	}
	full := append(append([]byte(nil), hello...), make([]byte, keyMACLen)...)
	for n := range len(full) {
		sc := &scriptConn{Reader: bytes.NewReader(full[:n])}
		err := a.serverHandshake(sc)
		if !errors.Is(err, ErrKeyHandshake) || !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
		if n < keyHelloLen && sc.out.Len() != 0 {
			t.Errorf("truncated to %d bytes: the acceptor answered before the whole challenge", n)
		}
	}
}

// TestKeyHandshakeClientRefuses: the dialing side refuses an acceptor that
// hangs up (a node without a key), answers short, or answers with another
// key, and never sends its own answer then.
func TestKeyHandshakeClientRefuses(t *testing.T) {
	a := newConnAuth(testKey, purposePeerLink)
	other := newConnAuth(testOtherKey, purposePeerLink)
	for _, c := range []struct {
		name, want string
		reply      func(nc []byte) []byte
	}{
		{"hang-up", "the remote closed the connection", func([]byte) []byte { return nil }},
		{"short", "the remote closed the connection", func([]byte) []byte { return make([]byte, keyReplyLen-1) }},
		{"other key", "another cluster key", func(nc []byte) []byte {
			ns := bytes.Repeat([]byte{3}, keyNonceLen)
			return append(ns, other.sum('S', ns, nc)...)
		}},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			s, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer s.Close()
			s.SetDeadline(time.Now().Add(5 * time.Second))
			hello := make([]byte, keyHelloLen)
			io.ReadFull(s, hello)
			s.Write(c.reply(hello[len(keyMagic):]))
			s.(*net.TCPConn).CloseWrite()
			rest, _ := io.ReadAll(s)
			got <- rest
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		err = a.dialSide(conn, time.Now().Add(5*time.Second))
		conn.Close()
		ln.Close()
		if !errors.Is(err, ErrKeyHandshake) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
		if rest := <-got; len(rest) != 0 {
			t.Errorf("%s: the dialer sent %d bytes after a failed check", c.name, len(rest))
		}
	}
}

// TestKeyGateSlowStranger: on the peer link and raft ports, a stranger that
// connects and stays silent does not hold up a node's connection behind it,
// and is refused, logged and counted when the handshake timeout passes.
func TestKeyGateSlowStranger(t *testing.T) {
	const timeout = 500 * time.Millisecond
	t.Run("peer link", func(t *testing.T) {
		log, buf := captureLog(slog.LevelWarn)
		rec := newPeerRecorder()
		pl := startPeerListener(t, PeerListenerConfig{Key: testKey, HandshakeTimeout: timeout, Logger: log}, rec.deliver)
		stranger, err := net.Dial("tcp", pl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer stranger.Close()
		l := startPeerLink(t, PeerLinkConfig{Node: "a", Boot: 1, Addr: pl.Addr().String(), Key: testKey})
		start := time.Now()
		sendAll(t, l, 0, 10)
		waitUntil(t, 5*time.Second, "the frames", func() bool { return rec.count("a") == 10 })
		if d := time.Since(start); d < timeout && pl.Stats().KeyRefused != 0 {
			t.Fatalf("stranger refused before its timeout (%v)", d)
		}
		waitUntil(t, 5*time.Second, "the stranger refused", func() bool { return pl.Stats().KeyRefused == 1 })
		checkClosedByPeer(t, stranger)
		if !buf.hasLine("level=WARN", "peer link: connection from "+stranger.LocalAddr().String()+" refused: bad cluster key handshake") {
			t.Errorf("no warning naming the stranger:\n%s", buf)
		}
	})
	t.Run("raft port", func(t *testing.T) {
		log, buf := captureLog(slog.LevelWarn)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m := newMux(ln, nil)
		m.gate = newKeyGate(testKey, purposeRaft, "raft port", timeout, log)
		m.auth = newConnAuth(testKey, purposeRaft)
		m.handle(streamForward, forwardHandler(func(req []byte) ([]byte, error) { return append([]byte("re:"), req...), nil }))
		go m.serve()
		defer m.close()
		stranger, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer stranger.Close()
		pool := newForwardPool(m.auth)
		defer pool.close()
		resp, err := pool.call(ln.Addr().String(), []byte("x"), 5*time.Second)
		if err != nil || string(resp) != "re:x" {
			t.Fatalf("forward behind a silent stranger: %q, %v", resp, err)
		}
		waitUntil(t, 5*time.Second, "the stranger refused", func() bool { return m.gate.Refused() == 1 })
		checkClosedByPeer(t, stranger)
		if !buf.hasLine("level=WARN", "raft port: connection from "+stranger.LocalAddr().String()+" refused: bad cluster key handshake", "no challenge") {
			t.Errorf("no warning naming the stranger:\n%s", buf)
		}
		// Without the key, or with another, the forwarding RPC is refused
		// on both sides.
		if _, err := newForwardPool(nil).call(ln.Addr().String(), []byte("x"), 5*time.Second); err == nil {
			t.Error("forward without a key answered")
		}
		if _, err := newForwardPool(newConnAuth(testOtherKey, purposeRaft)).call(ln.Addr().String(), []byte("x"), 5*time.Second); !errors.Is(err, ErrKeyHandshake) {
			t.Errorf("forward with another key: %v", err)
		}
		waitUntil(t, 5*time.Second, "both refused", func() bool { return m.gate.Refused() == 3 })
	})
}

// TestPeerLinkKeyMismatch: a link with another key, or none, never
// delivers to a listener with a key, nor a link with a key to one without;
// both ends say why. Then a link with the right key delivers.
func TestPeerLinkKeyMismatch(t *testing.T) {
	for _, c := range []struct {
		name               string
		linkKey, listenKey []byte
		linkLog, listenLog []string
	}{
		{"other key", testOtherKey, testKey,
			[]string{"level=WARN", "peer link: cluster key handshake failed", "another cluster key"},
			[]string{"level=WARN", "peer link: connection from", "refused: bad cluster key handshake", "no answer"}},
		{"link without key", nil, testKey,
			nil,
			[]string{"level=WARN", "peer link: connection from", "refused: bad cluster key handshake", "not a cluster key handshake"}},
		{"listener without key", testKey, nil,
			[]string{"level=WARN", "peer link: cluster key handshake failed", "the remote closed the connection"},
			[]string{"level=WARN", "peer link: closing connection on bad input", "hello: wrong message type"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			llog, lbuf := captureLog(slog.LevelWarn)
			plog, sbuf := captureLog(slog.LevelWarn)
			rec := newPeerRecorder()
			pl := startPeerListener(t, PeerListenerConfig{Key: c.listenKey, Logger: plog}, rec.deliver)
			l := startPeerLink(t, PeerLinkConfig{Node: "a", Boot: 1, Addr: pl.Addr().String(), Key: c.linkKey, Logger: llog})
			sendAll(t, l, 0, 3)
			waitUntil(t, 5*time.Second, "refusals on both ends", func() bool {
				st := pl.Stats()
				return st.KeyRefused+st.BadConns >= 3 && (c.linkLog == nil || lbuf.hasLine(c.linkLog...)) && sbuf.hasLine(c.listenLog...)
			})
			if rec.count("a") != 0 || l.Stats().Acked != 0 {
				t.Fatalf("delivered %d, acked %d", rec.count("a"), l.Stats().Acked)
			}
			if n := strings.Count(lbuf.String(), "peer link: cluster key handshake failed"); n > 1 {
				t.Errorf("the link warned %d times:\n%s", n, lbuf)
			}
		})
	}
	rec := newPeerRecorder()
	pl := startPeerListener(t, PeerListenerConfig{Key: testKey, Logger: quiet}, rec.deliver)
	l := startPeerLink(t, PeerLinkConfig{Node: "a", Boot: 1, Addr: pl.Addr().String(), Key: testKey, Logger: quiet})
	sendAll(t, l, 0, 3)
	waitDrained(t, l, 3)
	checkPeerFrames(t, rec.frames("a"), 0, 3)
}

// checkClosedByPeer fails unless the other end closes c within 5 s.
func checkClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed by the node")
	}
}

// TestKeyGateBounded: past maxPendingHandshakes silent strangers, a new
// connection is refused at once and counted.
func TestKeyGateBounded(t *testing.T) {
	g := newKeyGate(testKey, purposePeerLink, "peer link", time.Minute, quiet)
	for range maxPendingHandshakes {
		g.pending <- struct{}{}
	}
	a, b := net.Pipe()
	defer b.Close()
	if g.admit(a) {
		t.Fatal("admitted past the bound")
	}
	if g.Refused() != 1 {
		t.Fatalf("refused %d, want 1", g.Refused())
	}
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection not closed")
	}
}

// TestNoKeyNoHandshake: without a key nothing changes on the wire.
func TestNoKeyNoHandshake(t *testing.T) {
	if newConnAuth(nil, purposeRaft) != nil || newKeyGate(nil, purposeRaft, "raft port", time.Second, quiet) != nil {
		t.Fatal("a nil key made a handshake")
	}
	var g *keyGate
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if !g.admit(a) || g.Refused() != 0 {
		t.Fatal("nil gate refused")
	}
	var ca *connAuth
	if err := ca.dialSide(a, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// FuzzPeerHandshake feeds arbitrary bytes to the accepting side of the
// handshake: it never panics, never authenticates, and never answers before
// the whole challenge has arrived.
func FuzzPeerHandshake(f *testing.F) {
	a := newConnAuth(testKey, purposePeerLink)
	hello := append([]byte(keyMagic), bytes.Repeat([]byte{1}, keyNonceLen)...)
	f.Add([]byte{})
	f.Add([]byte(keyMagic))
	f.Add(hello)
	f.Add(append(append([]byte(nil), hello...), make([]byte, keyMACLen)...))
	f.Add(append(append([]byte(nil), hello...), a.sum('C', hello[4:], make([]byte, keyNonceLen))...))
	f.Add(appendPeerHello(nil, peerHello{Node: "n", Boot: 1, Session: 2, FirstSeq: 1}))
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := &scriptConn{Reader: bytes.NewReader(in)}
		err := a.serverHandshake(sc)
		if err == nil {
			t.Fatalf("authenticated %x", in)
		}
		if !errors.Is(err, ErrKeyHandshake) {
			t.Fatalf("error %v does not wrap ErrKeyHandshake", err)
		}
		if sc.out.Len() != 0 && sc.out.Len() != keyReplyLen {
			t.Fatalf("answered %d bytes", sc.out.Len())
		}
		if sc.out.Len() != 0 && (len(in) < keyHelloLen || string(in[:len(keyMagic)]) != keyMagic) {
			t.Fatal("answered without a whole challenge")
		}
	})
}
