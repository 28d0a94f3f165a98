package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Interoperability with Eclipse Mosquitto's command-line clients, a second
// independent MQTT implementation. .ci/run installs them (Debian package
// mosquitto-clients); without them these tests skip, loudly.

// mosqClient is a running mosquitto_sub (or pub) with its output.
type mosqClient struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan error
	cancel context.CancelFunc
}

// needMosquitto skips the test when the mosquitto clients are missing.
func needMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("!!! SKIPPING MOSQUITTO INTEROP TEST: %s not found (%v); install the Debian package mosquitto-clients (CI's .ci/run does) !!!", tool, err)
		}
	}
}

// mosqArgs are the arguments every mosquitto client gets for addr.
func mosqArgs(t *testing.T, addr string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-h", host, "-p", port}
}

// startMosq starts tool with args; the process is killed at cleanup.
func startMosq(t *testing.T, tool string, args ...string) *mosqClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	m := &mosqClient{cmd: exec.CommandContext(ctx, tool, args...), done: make(chan error, 1), cancel: cancel}
	m.cmd.Stdout = &m.out
	m.cmd.Stderr = &m.out
	if err := m.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", tool, err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-m.done
	})
	return m
}

// wait waits for the process to exit and returns its output.
func (m *mosqClient) wait(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("%s: %v\n%s", m.cmd.Path, err, m.out.String())
		}
		return m.out.String()
	case <-time.After(timeout):
		m.cancel()
		err := <-m.done
		m.done <- err
		t.Fatalf("%s did not exit within %v: %v\n%s", m.cmd.Path, timeout, err, m.out.String())
		return ""
	}
}

// runMosqPub runs mosquitto_pub to completion.
func runMosqPub(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

// waitSubscriptions polls until the broker indexes n subscriptions.
func waitSubscriptions(t *testing.T, tb *testBroker, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d subscriptions", n), func() bool {
		return tb.B.SubscriptionCount() >= n
	})
}

var mosqVersions = []struct{ name, flag string }{{"3.1.1", "mqttv311"}, {"5.0", "mqttv5"}}

// TestMosquittoPubSub has mosquitto_pub publish to mosquitto_sub at each QoS
// in both protocol versions.
func TestMosquittoPubSub(t *testing.T) {
	needMosquitto(t)
	tb := startBroker(t, nil)
	subs := 0
	for _, v := range mosqVersions {
		for qos := 0; qos <= 2; qos++ {
			t.Run(fmt.Sprintf("%s QoS %d", v.name, qos), func(t *testing.T) {
				topic := fmt.Sprintf("mosq/%s/%d", v.flag, qos)
				payload := fmt.Sprintf("hello %s qos %d", v.name, qos)
				q := fmt.Sprint(qos)
				sub := startMosq(t, "mosquitto_sub", append(mosqArgs(t, tb.Addr), "-V", v.flag, "-i", "msub-"+v.flag+q,
					"-t", topic, "-q", q, "-C", "1", "-W", "10", "-F", "%t|%q|%r|%p")...)
				subs++
				waitSubscriptions(t, tb, subs)
				runMosqPub(t, append(mosqArgs(t, tb.Addr), "-V", v.flag, "-i", "mpub-"+v.flag+q,
					"-t", topic, "-q", q, "-m", payload)...)
				got := strings.TrimSpace(sub.wait(t, 10*time.Second))
				if want := fmt.Sprintf("%s|%d|0|%s", topic, qos, payload); got != want {
					t.Fatalf("mosquitto_sub printed %q, want %q", got, want)
				}
				subs-- // mosquitto_sub exited; its clean session is gone
				waitFor(t, 5*time.Second, "subscription removed", func() bool { return tb.B.SubscriptionCount() == subs })
			})
		}
	}
}

// TestMosquittoRetained stores a retained message with mosquitto_pub -r and
// reads it with a later mosquitto_sub, in both versions.
func TestMosquittoRetained(t *testing.T) {
	needMosquitto(t)
	tb := startBroker(t, nil)
	for _, v := range mosqVersions {
		t.Run(v.name, func(t *testing.T) {
			topic := "mosq/retained/" + v.flag
			payload := "kept for " + v.name
			runMosqPub(t, append(mosqArgs(t, tb.Addr), "-V", v.flag, "-t", topic, "-q", "1", "-r", "-m", payload)...)
			waitFor(t, 5*time.Second, "retained message stored", func() bool { return tb.B.RetainedCount() >= 1 })
			for _, q := range []string{"0", "1", "2"} {
				sub := startMosq(t, "mosquitto_sub", append(mosqArgs(t, tb.Addr), "-V", v.flag,
					"-t", topic, "-q", q, "-C", "1", "-W", "10", "-F", "%t|%q|%r|%p")...)
				got := strings.TrimSpace(sub.wait(t, 10*time.Second))
				wantQoS := min(q, "1")
				if want := fmt.Sprintf("%s|%s|1|%s", topic, wantQoS, payload); got != want {
					t.Fatalf("subscribe QoS %s: mosquitto_sub printed %q, want %q", q, got, want)
				}
			}
		})
	}
	// An empty retained message clears it.
	for _, v := range mosqVersions {
		runMosqPub(t, append(mosqArgs(t, tb.Addr), "-V", v.flag, "-t", "mosq/retained/"+v.flag, "-r", "-n")...)
	}
	waitFor(t, 5*time.Second, "retained messages cleared", func() bool { return tb.B.RetainedCount() == 0 })
}

// TestMosquittoUserProperties sends v5 user properties with mosquitto_pub -D,
// received by mosquitto_sub and by a paho client, and the other way round.
func TestMosquittoUserProperties(t *testing.T) {
	needMosquitto(t)
	tb := startBroker(t, nil)
	watcher, _ := dialV5(t, tb.Addr, "watcher", nil)
	watcher.sub(t, paho.SubscribeOptions{Topic: "mosq/props/#", QoS: 1})
	sub := startMosq(t, "mosquitto_sub", append(mosqArgs(t, tb.Addr), "-V", "mqttv5", "-t", "mosq/props/#",
		"-q", "1", "-C", "2", "-W", "10", "-F", "%t|%P|%p")...)
	waitSubscriptions(t, tb, 2)

	runMosqPub(t, append(mosqArgs(t, tb.Addr), "-V", "mqttv5", "-t", "mosq/props/from-mosquitto", "-q", "1", "-m", "p1",
		"-D", "publish", "user-property", "colour", "blue",
		"-D", "publish", "user-property", "colour", "green",
		"-D", "publish", "user-property", "size", "9")...)
	m := watcher.next(t, 5*time.Second)
	var got []string
	for _, u := range m.Properties.User {
		got = append(got, u.Key+"="+u.Value)
	}
	// Order and duplicates are kept [MQTT-3.3.2-17, MQTT-3.3.2-18].
	if want := "colour=blue colour=green size=9"; strings.Join(got, " ") != want {
		t.Fatalf("paho got user properties %q, want %q", got, want)
	}

	p := &paho.Publish{Topic: "mosq/props/from-paho", QoS: 1, Payload: []byte("p2"), Properties: &paho.PublishProperties{}}
	p.Properties.User.Add("k", "v1").Add("k2", "v2")
	watcher.pub(t, p)
	watcher.next(t, 5*time.Second)

	lines := strings.Split(strings.TrimSpace(sub.wait(t, 10*time.Second)), "\n")
	want := []string{"mosq/props/from-mosquitto|colour:blue colour:green size:9|p1", "mosq/props/from-paho|k:v1 k2:v2|p2"}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("mosquitto_sub printed %q, want %q", lines, want)
	}
}

// TestMosquittoWill kills a mosquitto_sub that set a will; the broker
// publishes the will to a watcher.
func TestMosquittoWill(t *testing.T) {
	needMosquitto(t)
	tb := startBroker(t, nil)
	watcher, _ := dialV5(t, tb.Addr, "watcher", nil)
	watcher.sub(t, paho.SubscribeOptions{Topic: "mosq/will/#", QoS: 1})
	subs := 1
	for _, v := range mosqVersions {
		t.Run(v.name, func(t *testing.T) {
			topic := "mosq/will/" + v.flag
			payload := "gone " + v.name
			m := startMosq(t, "mosquitto_sub", append(mosqArgs(t, tb.Addr), "-V", v.flag, "-i", "will-"+v.flag,
				"-t", "mosq/quiet", "-k", "60", "--will-topic", topic, "--will-payload", payload, "--will-qos", "1")...)
			subs++
			waitSubscriptions(t, tb, subs)
			if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			got := watcher.next(t, 5*time.Second)
			if got.Topic != topic || string(got.Payload) != payload || got.QoS != 1 {
				t.Fatalf("will: got %q %q QoS %d, want %q %q QoS 1", got.Topic, got.Payload, got.QoS, topic, payload)
			}
			subs--
			waitFor(t, 5*time.Second, "killed client's session gone", func() bool { return tb.B.SubscriptionCount() == subs })
		})
	}
	// A client that disconnects normally sends no will [MQTT-3.1.2-10].
	sub := startMosq(t, "mosquitto_sub", append(mosqArgs(t, tb.Addr), "-V", "mqttv5", "-t", "mosq/quiet", "-C", "1", "-W", "10",
		"--will-topic", "mosq/will/normal", "--will-payload", "unexpected")...)
	waitSubscriptions(t, tb, subs+1)
	runMosqPub(t, append(mosqArgs(t, tb.Addr), "-t", "mosq/quiet", "-m", "bye")...)
	sub.wait(t, 10*time.Second)
	watcher.none(t, 200*time.Millisecond)
}
