package broker_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cmd/node/nodetest"
	"github.com/flockmq/flockmq/codec"
)

// TestAbuseLoggedAndCounted: at the default log level, malformed input,
// protocol errors, oversized packets and connect timeouts are logged with
// the client's address (and id, once known) and counted; a flood of them
// is rate-limited in the log.
func TestAbuseLoggedAndCounted(t *testing.T) {
	var logged nodetest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tb := startBroker(t, func(c *broker.Config) {
		c.MaxPacketSize = 1024
		c.ConnectTimeout = time.Second
	}, broker.WithLogger(log))
	st := tb.B.Stats()

	// Malformed: a PUBLISH whose topic holds a wildcard.
	r := connectRaw(t, tb.Addr, codec.V311, "abuser-malformed")
	r.send([]byte{0x30, 5, 0, 3, 'a', '/', '#'})
	if closed, _ := r.closed(5 * time.Second); !closed {
		t.Fatal("malformed packet: connection still open")
	}
	// Protocol error: a second CONNECT.
	r = connectRaw(t, tb.Addr, codec.V5, "abuser-protocol")
	r.send(codec.AppendConnect(nil, &codec.ConnectPacket{Version: codec.V5, CleanStart: true, ClientID: []byte("again")}))
	if closed, _ := r.closed(5 * time.Second); !closed {
		t.Fatal("protocol error: connection still open")
	}
	// Oversized: a header announcing 2,000 bytes.
	r = connectRaw(t, tb.Addr, codec.V311, "abuser-large")
	r.send([]byte{0x30, 0xd0, 0x0f})
	if closed, _ := r.closed(5 * time.Second); !closed {
		t.Fatal("oversized packet: connection still open")
	}
	// Connect timeout: a connection that never sends CONNECT.
	idle := dialRaw(t, tb.Addr, codec.V311)
	if closed, _ := idle.closed(5 * time.Second); !closed {
		t.Fatal("no CONNECT: connection still open after the connect timeout")
	}
	waitFor(t, 5*time.Second, "the counters", func() bool {
		return st.ProtocolErrors.Load() >= 3 && st.PacketsTooLarge.Load() == 1 && st.ConnectTimeouts.Load() == 1
	})
	out := logged.String()
	for _, want := range []string{
		`msg="connection closed: malformed packet" client=abuser-malformed remote=127.0.0.1:`,
		`msg="connection closed: protocol error" client=abuser-protocol remote=127.0.0.1:`,
		`msg="connection closed: packet larger than max-packet-size" client=abuser-large remote=127.0.0.1:`,
		`msg="connection closed: no CONNECT in time" remote=127.0.0.1:`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}

	// A flood: 40 more malformed connections log at most ten lines in the
	// period.
	for i := range 40 {
		r := connectRaw(t, tb.Addr, codec.V311, fmt.Sprintf("flood-%d", i))
		r.send([]byte{0x30, 5, 0, 3, 'a', '/', '#'})
		if closed, _ := r.closed(5 * time.Second); !closed {
			t.Fatal("flood: connection still open")
		}
	}
	waitFor(t, 5*time.Second, "the flood counted", func() bool { return st.ProtocolErrors.Load() >= 43 })
	lines := strings.Count(logged.String(), `msg="connection closed: malformed packet"`) +
		strings.Count(logged.String(), `msg="connection closed: protocol error"`)
	if lines > 10 {
		t.Fatalf("%d lines about malformed packets and protocol errors in one period, want at most 10", lines)
	}
}
