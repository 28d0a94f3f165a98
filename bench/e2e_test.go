package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flockmq/flockmq/codec"
)

// mosquitto is a broker child process for end-to-end tests. addr2 is a
// second listener of the same broker, which the role-host tests use as if
// it were another node.
type mosquitto struct {
	addr  string
	addr2 string
	pid   int
}

// startMosquitto runs mosquitto on a free loopback port for the test's
// lifetime. It skips the test, loudly, only when the binary is absent.
func startMosquitto(t *testing.T) mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("SKIPPING END-TO-END TEST: no mosquitto binary (apt-get install -y mosquitto); " +
				"the load tool is NOT checked against a real broker in this run")
		}
		bin = "/usr/sbin/mosquitto"
	}
	var lastErr error
	for range 5 { // the port may be taken between probing and mosquitto's bind
		m, err := tryMosquitto(t, bin)
		if err == nil {
			return m
		}
		lastErr = err
	}
	t.Fatalf("mosquitto did not start: %v", lastErr)
	return mosquitto{}
}

func tryMosquitto(t *testing.T, bin string) (mosquitto, error) {
	var ports [2]int
	var lns []net.Listener // held until both are picked, so that they differ
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return mosquitto{}, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	port := ports[0]
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// max_queued_messages 0: no per-client queue limit, so QoS 1/2 are never
	// dropped by the broker's policy; set_tcp_nodelay: no Nagle delays.
	text := fmt.Sprintf("listener %d 127.0.0.1\nlistener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nset_tcp_nodelay true\n",
		port, ports[1])
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return mosquitto{}, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return mosquitto{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case err := <-exited:
			return mosquitto{}, fmt.Errorf("mosquitto exited: %v: %s", err, out.String())
		case <-tk.C:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return mosquitto{addr: addr, addr2: fmt.Sprintf("127.0.0.1:%d", ports[1]), pid: cmd.Process.Pid}, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return mosquitto{}, errors.New("mosquitto not accepting connections")
		}
	}
}

func e2eConfig(addr, scenario string) Config {
	cfg := DefaultConfig()
	cfg.Scenario = scenario
	cfg.Hosts = []string{addr}
	cfg.Interval = 0
	cfg.Clients = 3
	cfg.Count = 300
	cfg.Rate = 3000
	cfg.Duration = 20 * time.Second // a cap only
	cfg.Drain = 10 * time.Second
	cfg.ConnTimeout = 20 * time.Second
	// 3.1.1 has no Receive Maximum, and mosquitto silently drops QoS 2
	// publishes beyond max_inflight_messages (default 20); see
	// TestE2EDetectsBrokerLoss.
	cfg.Inflight = 16
	return cfg
}

func runOK(t *testing.T, cfg Config) *Summary {
	t.Helper()
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%s: %v", cfg.Scenario, err)
	}
	if sum.Conn.Failed != 0 || sum.Conn.Dropped != 0 || len(sum.Errors) != 0 {
		t.Fatalf("%s: connections %+v, errors %v", cfg.Scenario, sum.Conn, sum.Errors)
	}
	return sum
}

func TestE2EFlows(t *testing.T) {
	m := startMosquitto(t)
	for _, v := range []codec.Version{codec.V5, codec.V311} {
		for _, scenario := range []string{"pairs", "fanin", "fanout"} {
			for qos := range byte(3) {
				t.Run(fmt.Sprintf("%s/v%d/qos%d", scenario, v, qos), func(t *testing.T) {
					cfg := e2eConfig(m.addr, scenario)
					cfg.Version, cfg.QoS = v, qos
					sum := runOK(t, cfg)
					pubs, fan := int64(3), int64(1)
					switch scenario {
					case "fanout":
						pubs, fan = 1, 3
					}
					wantSent := pubs * int64(cfg.Count)
					if sum.Pub.Sent != wantSent || sum.Pub.Expected != wantSent*fan {
						t.Fatalf("sent %d expected %d, want %d and %d", sum.Pub.Sent, sum.Pub.Expected, wantSent, wantSent*fan)
					}
					q := sum.Seq
					if q.Duplicated != 0 || q.Late != 0 || sum.Pub.Foreign != 0 || sum.Pub.Delivered > sum.Pub.Expected {
						t.Fatalf("implausible: %+v, pub %+v", q, sum.Pub)
					}
					if int64(q.Streams) != pubs*fan {
						t.Fatalf("streams %d, want %d", q.Streams, pubs*fan)
					}
					if sum.Latency.Count != sum.Pub.Delivered || sum.Latency.P50 <= 0 {
						t.Fatalf("latency %+v for %d deliveries", sum.Latency, sum.Pub.Delivered)
					}
					if qos == 0 {
						if sum.Pub.Delivered < sum.Pub.Expected/2 || int64(q.Unique)+int64(q.Lost) != sum.Pub.Expected {
							t.Fatalf("QoS 0: delivered %d unique %d lost %d of %d", sum.Pub.Delivered, q.Unique, q.Lost, sum.Pub.Expected)
						}
						return
					}
					if q.Lost != 0 || sum.Pub.Delivered != sum.Pub.Expected || sum.Pub.Acked != wantSent {
						t.Fatalf("QoS %d loss: %+v, pub %+v", qos, q, sum.Pub)
					}
					if sum.Ack.Count != wantSent {
						t.Fatalf("ack latency count %d", sum.Ack.Count)
					}
				})
			}
		}
	}
}

func TestE2EOtherScenarios(t *testing.T) {
	m := startMosquitto(t)
	t.Run("pub", func(t *testing.T) {
		cfg := e2eConfig(m.addr, "pub")
		cfg.QoS, cfg.Rate = 1, 0 // unlimited, bounded by the window
		sum := runOK(t, cfg)
		if sum.Pub.Acked != 900 || sum.Ack.Count != 900 || sum.Pub.Delivered != 0 {
			t.Fatalf("pub %+v ack %+v", sum.Pub, sum.Ack)
		}
	})
	t.Run("latency", func(t *testing.T) {
		cfg := e2eConfig(m.addr, "latency")
		cfg.Clients, cfg.Count, cfg.Rate = 1, 100, 500
		sum := runOK(t, cfg)
		if sum.Latency.Count != 100 || sum.Seq.Lost != 0 {
			t.Fatalf("latency %+v seq %+v", sum.Latency, sum.Seq)
		}
		if rate := sum.Pub.SentRate; rate > 600 {
			t.Fatalf("rate %.0f/s exceeds --rate 500", rate)
		}
	})
	t.Run("conn", func(t *testing.T) {
		cfg := e2eConfig(m.addr, "conn")
		cfg.Clients, cfg.Count, cfg.Duration, cfg.PID = 50, 0, 50*time.Millisecond, m.pid
		cfg.SourceIPs = mustIPs(t, "127.0.0.1,127.0.0.2,127.0.0.3")
		sum := runOK(t, cfg)
		if sum.Conn.Connected != 50 || sum.Conn.Connack.Count != 50 || sum.Conn.RSSAfterKB <= 0 || sum.Conn.Rate <= 0 {
			t.Fatalf("conn %+v", sum.Conn)
		}
	})
	for _, v := range []codec.Version{codec.V5, codec.V311} {
		t.Run(fmt.Sprintf("storm/v%d", v), func(t *testing.T) {
			cfg := e2eConfig(m.addr, "storm")
			cfg.Version, cfg.Clients, cfg.QoS = v, 20, 1
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			sum := runOK(t, cfg)
			if sum.Conn.SessionPresent != 20 || sum.Conn.Connack.Count != 20 {
				t.Fatalf("storm %+v", sum.Conn)
			}
			// The cleanup removed the sessions: a second storm starts fresh
			// and again finds all 20 sessions in its reconnect phase only.
			sum = runOK(t, cfg)
			if sum.Conn.SessionPresent != 20 {
				t.Fatalf("second storm %+v", sum.Conn)
			}
		})
	}
	t.Run("retained", func(t *testing.T) {
		cfg := e2eConfig(m.addr, "retained")
		cfg.QoS, cfg.Topics, cfg.Count = 1, 200, 0
		sum := runOK(t, cfg)
		rt := sum.Retained
		if rt == nil || rt.Complete != 3 || rt.TimeToAll.Count != 3 || sum.Seq.Lost != 0 || sum.Seq.Unique != 600 {
			t.Fatalf("retained %+v seq %+v", rt, sum.Seq)
		}
		// The run cleared its topics: a subscriber now sees none of them.
		cfg.Topics = 1
		cfg.Topic = "flockmq-bench/retained-check/%p"
		cfg.Filter = "flockmq-bench/retained/#"
		cfg.Drain, cfg.Duration = 200*time.Millisecond, 200*time.Millisecond
		sum, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Pub.Delivered != 0 || sum.Pub.Stale != 0 {
			t.Fatalf("retained messages left behind: %+v", sum.Pub)
		}
	})
	t.Run("compare", func(t *testing.T) {
		cc := CompareConfig{Targets: []Target{{"a", []string{m.addr}}, {"b", []string{m.addr}}}, Rounds: 2,
			Scenario: "pairs", Args: []string{"--host", "ignored:1", "-c", "2", "--count", "200", "--qos", "1", "--interval", "0"}}
		res, err := Compare(context.Background(), cc)
		if err != nil {
			t.Fatal(err)
		}
		for _, tf := range res.Targets {
			if len(tf.Runs["sent_per_s"]) != 2 || tf.Median["sent_per_s"] <= 0 || len(tf.Errors) != 0 {
				t.Fatalf("target %+v", tf)
			}
		}
		if res.Targets[0].Ratio["sent_per_s"] != 1 || res.Targets[1].Ratio["sent_per_s"] <= 0 {
			t.Fatalf("ratios %v", res.Targets[1].Ratio)
		}
	})
}

// TestE2EDetectsBrokerLoss drives mosquitto past its incoming QoS 2 quota
// with MQTT 3.1.1, where it answers PUBREC with reason 0x97 (quota exceeded),
// which a 3.1.1 client cannot see, and drops the message (at times it also
// closes the connection). The tool must report exactly the messages that
// never arrived as lost.
func TestE2EDetectsBrokerLoss(t *testing.T) {
	m := startMosquitto(t)
	cfg := e2eConfig(m.addr, "pairs")
	cfg.Version, cfg.QoS, cfg.Clients, cfg.Inflight, cfg.Rate = codec.V311, 2, 1, 64, 0
	cfg.Drain = time.Second // the lost messages never come
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := sum.Seq
	if q.Lost == 0 {
		t.Fatalf("mosquitto 2.0 drops 3.1.1 QoS 2 publishes beyond max_inflight_messages; no loss seen: %+v %+v", q, sum.Pub)
	}
	if int64(q.Unique+q.Lost) != sum.Pub.Expected || int64(q.Unique) != sum.Pub.Delivered || q.Duplicated != 0 {
		t.Fatalf("inconsistent: %+v %+v", q, sum.Pub)
	}
	t.Logf("detected %d lost of %d (broker quota drops)", q.Lost, sum.Pub.Expected)
}

func mustIPs(t *testing.T, s string) []netip.Addr {
	t.Helper()
	ips, err := ParseSourceIPs(s)
	if err != nil {
		t.Fatal(err)
	}
	return ips
}
