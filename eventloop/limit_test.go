package eventloop

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/codec"
)

// newServer makes a broker and a gnet server for it on addr, not started.
func newServer(t *testing.T, addr string, opts Options) (*Server, *broker.Broker) {
	t.Helper()
	return newServerCfg(t, addr, opts, nil)
}

// newServerCfg is newServer with the broker's default config changed by
// mutate (nil: unchanged).
func newServerCfg(t *testing.T, addr string, opts Options, mutate func(*broker.Config)) (*Server, *broker.Broker) {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.New(cfg, broker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = log
	return NewServer(b, addr, opts), b
}

// startServer runs a broker on a gnet server with opts on a free loopback
// port until the test ends.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	return startServerCfg(t, opts, nil)
}

// startServerCfg is startServer with the broker's config changed by mutate.
func startServerCfg(t *testing.T, opts Options, mutate func(*broker.Config)) *Server {
	t.Helper()
	srv, b := newServerCfg(t, "127.0.0.1:0", opts, mutate)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Shutdown(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return srv
}

// connectV311 dials addr and sends CONNECT; it returns the connection and
// whether a CONNACK came back (false: the server closed it).
func connectV311(t *testing.T, addr, id string) (net.Conn, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte(id), KeepAlive: 60}
	if _, err := c.Write(codec.AppendConnect(nil, &cp)); err != nil {
		return c, false // already closed by the server
	}
	return c, readPacket(t, c) == codec.Connack
}

// readPacket reads one packet's type from c, 0 if c was closed.
func readPacket(t *testing.T, c net.Conn) codec.PacketType {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no packet and no close within 10 s")
		}
		return 0
	}
	if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
		return 0
	}
	return codec.PacketType(hdr[0] >> 4)
}

// TestMaxConns: past MaxConns a connection is closed as soon as it is
// accepted, the connections already open keep working, and a place freed
// is taken again. (Without the cap, the open-file limit is reached and gnet
// stops the whole engine when accept fails with EMFILE.)
func TestMaxConns(t *testing.T) {
	const max = 5
	srv := startServer(t, Options{Loops: 1, MaxConns: max})
	addr := srv.Addr().String()
	var held []net.Conn
	refused := 0
	for i := 0; i < max+3; i++ {
		c, ok := connectV311(t, addr, "c"+strconv.Itoa(i))
		if ok {
			held = append(held, c)
		} else {
			c.Close()
			refused++
		}
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if len(held) != max || refused != 3 {
		t.Fatalf("%d connections served and %d closed, want %d and 3", len(held), refused, max)
	}
	if got := srv.Refused(); got != 3 {
		t.Fatalf("Refused() = %d, want 3", got)
	}
	for i, c := range held {
		if _, err := c.Write([]byte{byte(codec.Pingreq) << 4, 0}); err != nil {
			t.Fatalf("held connection %d: %v", i, err)
		}
		if p := readPacket(t, c); p != codec.Pingresp {
			t.Fatalf("held connection %d answered PINGREQ with %v", i, p)
		}
	}
	// Free two places; they are taken again once the server has seen the
	// closes (poll: the close reaches the loop asynchronously).
	held[0].Close()
	held[1].Close()
	held = held[2:]
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 2 freed places taken again within 10 s", n)
		}
		c, ok := connectV311(t, addr, "again"+strconv.Itoa(n))
		if !ok {
			c.Close()
			time.Sleep(10 * time.Millisecond) // poll interval
			continue
		}
		held = append(held, c)
		n++
	}
}

func TestConnCapFromFileLimit(t *testing.T) {
	n := connCap()
	if n <= 0 {
		t.Fatalf("connCap() = %d on a system with a file limit", n)
	}
	srv := NewServer(nil, "127.0.0.1:0", Options{})
	if srv.MaxConns() != n {
		t.Fatalf("default MaxConns %d, want connCap() %d", srv.MaxConns(), n)
	}
}

// TestPortInUse: a second server on the port of a running one fails to
// start instead of sharing it through SO_REUSEPORT (and taking half of its
// connections).
func TestPortInUse(t *testing.T) {
	// The running server listens with SO_REUSEPORT (one loop, port 0), as
	// every loop does on a fixed port.
	one := startServer(t, Options{Loops: 1})
	addr := one.Addr().String()
	if second, _ := newServer(t, addr, Options{Loops: 2}); second.Start() == nil {
		t.Fatalf("a second server started on %s, which a running server holds", addr)
	}
	// The first still serves.
	c, ok := connectV311(t, addr, "still")
	if !ok {
		t.Fatal("the running server no longer answers")
	}
	c.Close()
}
