//go:build linux

package broker_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// Tests against the flockmq binary in a child process: the broker and its
// clients then have an open-file limit each, so 10,000 connections fit under
// a limit of 20,000 descriptors, and SIGTERM reaches a real main.

// TestChildBroker builds cmd/node once and runs the process-level tests.
func TestChildBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the flockmq binary; skipped with -short")
	}
	bin := nodetest.Build(t)
	t.Run("10k connections", func(t *testing.T) { testTenThousand(t, bin) })
	t.Run("SIGTERM", func(t *testing.T) { testSIGTERM(t, bin) })
	t.Run("random sessions", func(t *testing.T) { testRandomSessions(t, bin) })
	t.Run("fan-in QoS 1 without loss", func(t *testing.T) { testFanInNoLoss(t, bin) })
}

// startChild starts bin on a free loopback port, with a data dir and raft
// port of its own, and waits until it serves MQTT.
func startChild(t *testing.T, bin string, args ...string) *nodetest.Process {
	t.Helper()
	return nodetest.Start(t, bin, append([]string{"-sys-interval", "0", "-data-dir", t.TempDir(), "-raft-bind", "127.0.0.1:0"}, args...)...)
}

// procStatus returns a field of /proc/PID/status, e.g. "VmRSS".
func procStatus(pid int, field string) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// testTenThousand connects 10,000 raw 3.1.1 subscribers to a child broker and
// checks that every one receives a single publish. The clients are plain
// sockets served by small worker pools, not a goroutine each (the race
// detector allows 8128 live goroutines).
func testTenThousand(t *testing.T, bin string) {
	const n, workers = 10_000, 32
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < n+500 {
		t.Skipf("!!! SKIPPING 10k CONNECTION TEST: open-file limit %d is below %d !!!", lim.Cur, n+500)
	}
	ch := startChild(t, bin)
	pid := ch.Cmd.Process.Pid
	start := time.Now()

	// Connect and subscribe: CONNECT and SUBSCRIBE in one write, then
	// CONNACK and SUBACK read back.
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	wantAcks := append([]byte{0x20, 2, 0, 0}, 0x90, 3, 0, 1, 1)
	sub := codec.AppendSubscribe(nil, &codec.SubscribePacket{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: []byte("scale/all"), QoS: 1}}}, codec.V311)
	var (
		failed   atomic.Int64
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		if failed.Add(1) == 1 {
			errMu.Lock()
			firstErr = err
			errMu.Unlock()
		}
	}
	first := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return firstErr
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var buf []byte
			acks := make([]byte, len(wantAcks))
			for i := w; i < n; i += workers {
				c, err := net.DialTimeout("tcp", ch.Addr, 10*time.Second)
				if err != nil {
					fail(fmt.Errorf("dial %d: %w", i, err))
					continue
				}
				conns[i] = c
				buf = codec.AppendConnect(buf[:0], &codec.ConnectPacket{Version: codec.V311, CleanStart: true,
					ClientID: fmt.Appendf(nil, "scale-%05d", i)})
				buf = append(buf, sub...)
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				if _, err := c.Write(buf); err != nil {
					fail(fmt.Errorf("write %d: %w", i, err))
					continue
				}
				if _, err := io.ReadFull(c, acks); err != nil || !bytes.Equal(acks, wantAcks) {
					fail(fmt.Errorf("client %d: CONNACK+SUBACK % x, %v", i, acks, err))
				}
			}
		}(w)
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d clients failed to connect and subscribe; first: %v", f, n, first())
	}
	connected := time.Since(start)
	rss := procStatus(pid, "VmRSS")

	// One QoS 1 publish from another client.
	pub := dialRaw(t, ch.Addr, codec.V311)
	pub.connect("scale-publisher")
	pub.send(codec.AppendPublish(nil, &codec.PublishPacket{Topic: []byte("scale/all"), QoS: 1, PacketID: 7, Payload: []byte("to everyone")}, codec.V311))
	if pk := pub.read(10 * time.Second); pk == nil || pk.Type != codec.Puback || pk.Ack.PacketID != 7 {
		t.Fatalf("publisher: got %+v, want PUBACK 7", pk)
	}
	published := time.Now()

	var got atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var pk codec.Packet
			tmp := make([]byte, 256)
			for i := w; i < n; i += workers {
				c := conns[i]
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				if err := readPacket(c, &pk, tmp); err != nil {
					fail(fmt.Errorf("client %d: %w", i, err))
					continue
				}
				if pk.Type != codec.Publish || string(pk.Publish.Topic) != "scale/all" ||
					string(pk.Publish.Payload) != "to everyone" || pk.Publish.QoS != 1 {
					fail(fmt.Errorf("client %d: got type %d topic %q payload %q", i, pk.Type, pk.Publish.Topic, pk.Publish.Payload))
					continue
				}
				got.Add(1)
			}
		}(w)
	}
	wg.Wait()
	if got.Load() != n {
		t.Fatalf("%d of %d subscribers received the publish; %d failures, first: %v", got.Load(), n, failed.Load(), first())
	}
	t.Logf("%d clients connected and subscribed in %v; fan-out read back in %v; child VmRSS %s (peak %s)",
		n, connected.Round(time.Millisecond), time.Since(published).Round(time.Millisecond), rss, procStatus(pid, "VmHWM"))

	// SIGTERM with every client still connected: a clean exit in time.
	stop := time.Now()
	if err := ch.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := ch.ExitStatus(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	t.Logf("shut down with %d clients in %v", n, time.Since(stop).Round(time.Millisecond))
}

// readPacket reads one 3.1.1 packet from c into pk, using tmp to read.
func readPacket(c net.Conn, pk *codec.Packet, tmp []byte) error {
	var buf []byte
	for {
		_, err := codec.Decode(buf, codec.V311, 0, pk)
		if err != codec.ErrIncomplete {
			return err
		}
		k, err := c.Read(tmp)
		buf = append(buf, tmp[:k]...)
		if err != nil && k == 0 {
			return err
		}
	}
}

// testSIGTERM checks the shutdown path of main: a v5 client gets DISCONNECT
// 0x8B (server shutting down) and the process exits with status 0.
func testSIGTERM(t *testing.T, bin string) {
	ch := startChild(t, bin)
	v5 := dialRaw(t, ch.Addr, codec.V5)
	v5.connect("sigterm-v5")
	v3 := dialRaw(t, ch.Addr, codec.V311)
	v3.connect("sigterm-v3")
	if err := ch.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	closed, last := v5.closed(10 * time.Second)
	if !closed || last == nil || last.Type != codec.Disconnect || last.Disconnect.Reason != codec.ServerShuttingDown {
		t.Fatalf("v5 client: closed %v, last packet %+v; want DISCONNECT 0x8B then close", closed, last)
	}
	if closed, last := v3.closed(10 * time.Second); !closed || last != nil {
		t.Fatalf("3.1.1 client: closed %v, last packet %+v; want a close only", closed, last)
	}
	if code := ch.ExitStatus(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0\n%s", code, ch.Log.String())
	}
	if log := ch.Log.String(); !strings.Contains(log, "signal=terminated") || !strings.Contains(log, "stopped") {
		t.Errorf("log lacks the shutdown lines:\n%s", log)
	}
}
