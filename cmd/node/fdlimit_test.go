//go:build linux

package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// TestOpenFileLimit runs the binary with an open-file limit of 100 and opens
// more connections than that. Connections past the cap are closed on
// accept; the ones held keep working, and once they close the node accepts
// again. (gnet stops its whole engine when accept fails with EMFILE: without
// the cap every connection was dropped and the node stopped listening.)
func TestOpenFileLimit(t *testing.T) {
	const limit, dials = 100, 140
	bin := nodetest.Build(t)
	wrapper := filepath.Join(t.TempDir(), "flockmq-ulimit")
	script := "#!/bin/sh\nulimit -n " + strconv.Itoa(limit) + " || exit 3\nexec " + bin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p := nodetest.Start(t, wrapper, "-store", "memory", "-sys-interval", "0", "-loops", "1")
	defer p.Kill9(t)

	connect := func(id string) (net.Conn, bool) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			return nil, false
		}
		cp := codec.ConnectPacket{Version: codec.V311, CleanStart: true, ClientID: []byte(id), KeepAlive: 60}
		if _, err := c.Write(codec.AppendConnect(nil, &cp)); err != nil {
			c.Close()
			return nil, false
		}
		if readType(c) != codec.Connack {
			c.Close()
			return nil, false
		}
		return c, true
	}
	var held []net.Conn
	for i := 0; i < dials; i++ {
		if c, ok := connect("c" + strconv.Itoa(i)); ok {
			held = append(held, c)
		}
	}
	if len(held) == 0 || len(held) >= limit {
		t.Fatalf("%d of %d connections served under an open-file limit of %d", len(held), dials, limit)
	}
	t.Logf("%d of %d connections served under an open-file limit of %d", len(held), dials, limit)
	for i, c := range held {
		if _, err := c.Write([]byte{byte(codec.Pingreq) << 4, 0}); err != nil {
			t.Fatalf("held connection %d: %v\n%s", i, err, p.Log.String())
		}
		if typ := readType(c); typ != codec.Pingresp {
			t.Fatalf("held connection %d answered PINGREQ with %v after the limit was reached\n%s", i, typ, p.Log.String())
		}
		c.Close()
	}
	// Every place is free again: the node accepts new connections (poll, the
	// closes reach the loop asynchronously).
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, ok := connect("after"); ok {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted after the held ones closed\n%s", p.Log.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// readType reads one packet from c and returns its type, 0 if c closed.
func readType(c net.Conn) codec.PacketType {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return 0
	}
	if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
		return 0
	}
	return codec.PacketType(hdr[0] >> 4)
}
