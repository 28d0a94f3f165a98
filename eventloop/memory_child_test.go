//go:build linux

package eventloop

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/bench"
	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// TestPartialPacketMemory runs the flockmq binary in a child process and
// leaves 100 connections each 1,000 bytes short of a ~1 MB PUBLISH. Each
// partial packet must cost about its own size, not the four times gnet's
// doubling inbound ring made of it, and the memory must go back to the
// system once the connections close (without waiting for a garbage
// collection).
func TestPartialPacketMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the flockmq binary; skipped with -short")
	}
	const (
		conns   = 100
		pktSize = 1_048_000 // under the default max-packet-size, 1 MiB
		short   = 1_000
		// Bounds, in MB over the idle broker: each connection holds one
		// packet's worth (about 1 MB) and a little more; closed, little
		// stays (Mosquitto holds about 1 MB per such connection too).
		heldBound  = 150
		afterBound = 25
	)
	bin := nodetest.Build(t)
	ch := nodetest.Start(t, bin, "-sys-interval", "0", "-store", "memory")
	pid := ch.Cmd.Process.Pid
	_, portStr, _ := net.SplitHostPort(ch.Addr)
	port, _ := strconv.Atoi(portStr)
	base := vmRSS(t, pid)

	pub := codec.PublishPacket{Topic: []byte("big/partial"), Payload: make([]byte, 0)}
	hdr := codec.PublishSize(&pub, codec.V311)
	pub.Payload = make([]byte, pktSize-hdr-2) // the remaining length takes 3 bytes, not 1
	pkt := codec.AppendPublish(nil, &pub, codec.V311)
	if len(pkt) != pktSize {
		t.Fatalf("packet of %d bytes, want %d", len(pkt), pktSize)
	}
	pkt = pkt[:len(pkt)-short]

	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := range conns {
		c, err := net.DialTimeout("tcp", ch.Addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: fmt.Appendf(nil, "partial-%03d", i)}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(codec.AppendConnect(nil, &cp)); err != nil {
			t.Fatal(err)
		}
		var ack [4]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil || ack != [4]byte{0x20, 2, 0, 0} {
			t.Fatalf("client %d: CONNACK % x, %v", i, ack, err)
		}
		if _, err := c.Write(pkt); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	// Everything written has been read by the broker when no byte waits in
	// a socket queue between the clients and it.
	waitQueuesEmpty(t, port, 30*time.Second)
	held := vmRSS(t, pid)
	t.Logf("VmRSS idle %d MB, with %d partial packets of %d bytes %d MB (%.2f MB per connection)",
		base>>10, conns, len(pkt), held>>10, float64(held-base)/1024/conns)
	if held-base > heldBound<<10 {
		t.Errorf("VmRSS rose by %d MB with %d partial packets, want under %d MB", (held-base)>>10, conns, heldBound)
	}
	if log := ch.Log.String(); strings.Contains(log, "does not fit") {
		t.Errorf("connections closed over the partial packet budget, which 100 MB fits:\n%s", log)
	}

	for _, c := range cs {
		c.Close()
	}
	cs = nil
	deadline := time.Now().Add(30 * time.Second)
	after := vmRSS(t, pid)
	for after-base > afterBound<<10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // poll interval
		after = vmRSS(t, pid)
	}
	t.Logf("VmRSS after the connections closed: %d MB", after>>10)
	if after-base > afterBound<<10 {
		t.Errorf("VmRSS still %d MB over idle 30 s after the connections closed, want under %d MB", (after-base)>>10, afterBound)
	}
}

// vmRSS is the resident set of process pid in kB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	kb := bench.ProcessRSS(pid)
	if kb <= 0 {
		t.Fatalf("no VmRSS for pid %d", pid)
	}
	return int(kb)
}

// waitQueuesEmpty polls /proc/net/tcp until no established connection to
// or from port on this host has bytes queued: none unsent by the clients
// (tx_queue) and none unread by the server (rx_queue).
func waitQueuesEmpty(t *testing.T, port int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		queued, err := tcpQueued(port)
		if err != nil {
			t.Fatal(err)
		}
		if queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still queued on port %d after %v", queued, port, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// tcpQueued sums tx_queue and rx_queue over the established IPv4 TCP
// sockets with port at either end.
func tcpQueued(port int) (int, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	want := fmt.Sprintf(":%04X", port)
	total := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		if !strings.HasSuffix(f[1], want) && !strings.HasSuffix(f[2], want) {
			continue
		}
		tx, rx, _ := strings.Cut(f[4], ":")
		a, _ := strconv.ParseInt(tx, 16, 64)
		c, _ := strconv.ParseInt(rx, 16, 64)
		total += int(a + c)
	}
	return total, nil
}
