//go:build linux

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
)

// Security tests: the flockmq binary with a password file, an ACL file,
// JWT and an HTTP service, against mosquitto_pub/mosquitto_sub and paho.

// mosq runs a Mosquitto client tool with a deadline and returns its exit
// status and output.
func mosq(t *testing.T, tool string, args ...string) (int, string) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not installed (Debian's mosquitto-clients; .ci/run installs it): %v", tool, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// TestSecurityPasswordAndACL: a password file made by `flockmq passwd` and
// mosquitto_passwd, an ACL file in Mosquitto's format, anonymous clients
// refused, all reloaded on SIGHUP without dropping a connection.
func TestSecurityPasswordAndACL(t *testing.T) {
	bin := nodetest.Build(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if code, _, errs := runBin(t, bin, nil, "", "passwd", "-b", pw, "alice", "wonder"); code != 0 {
		t.Fatalf("flockmq passwd: %d %s", code, errs)
	}
	if code, out := mosq(t, "mosquitto_passwd", "-b", pw, "bob", "builder"); code != 0 {
		t.Fatalf("mosquitto_passwd: %d %s", code, out)
	}
	acl := filepath.Join(dir, "acl")
	writeFile(t, acl, "# anonymous: nothing\nuser alice\ntopic readwrite alice/#\ntopic read shared/#\n"+
		"user bob\ntopic write shared/#\ntopic read bob/#\npattern readwrite clients/%c/#\n")
	p := nodetest.Start(t, bin, "-store", "memory", "-sys-interval", "0", "-password-file", pw, "-acl-file", acl)
	host, port := hostPort(p.Addr)

	// Anonymous and wrong passwords are refused.
	if code, out := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-t", "x", "-m", "x"); code == 0 {
		t.Fatalf("anonymous publish accepted: %s", out)
	}
	if code, out := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", "nope", "-t", "alice/x", "-m", "x"); code == 0 ||
		!strings.Contains(strings.ToLower(out), "not authorised") && !strings.Contains(strings.ToLower(out), "bad user") {
		t.Fatalf("wrong password: %d %s", code, out)
	}

	// alice reads shared/#; bob may write there but not to alice/.
	sub := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-u", "alice", "-P", "wonder", "-i", "alice-sub",
		"-t", "shared/#", "-t", "alice/#", "-v", "-V", "mqttv5")
	var subOut syncBuffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })
	waitFor(t, "alice's subscription", 10*time.Second, func() bool {
		mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "bob", "-P", "builder", "-t", "shared/probe", "-m", "probe")
		return strings.Contains(subOut.String(), "shared/probe probe")
	})
	// mosquitto_pub v5 reports the PUBACK's 0x87 (and still exits 0).
	if _, out := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "bob", "-P", "builder", "-t", "alice/inbox", "-m", "sneaky", "-q", "1", "-V", "mqttv5"); !strings.Contains(out, "Not authorized") {
		t.Fatalf("bob's publish to alice/ not refused with 0x87: %q", out)
	}
	// A subscription outside the ACL gets 0x87 per filter (paho, v5).
	bobc, _ := dial5(t, p.Addr, "bob-v5", &paho.Connect{CleanStart: true, KeepAlive: 30, Username: "bob", UsernameFlag: true,
		Password: []byte("builder"), PasswordFlag: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	sa, _ := bobc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bob/#"}, {Topic: "alice/#"},
		{Topic: "clients/bob-v5/#"}, {Topic: "clients/other/#"}, {Topic: "$SYS/#"}}})
	cancel()
	if sa == nil || len(sa.Reasons) != 5 || sa.Reasons[0] != 0 || sa.Reasons[1] != 0x87 || sa.Reasons[2] != 0 ||
		sa.Reasons[3] != 0x87 || sa.Reasons[4] != 0x87 {
		t.Fatalf("suback %+v, want [0 0x87 0 0x87 0x87]", sa)
	}
	// A will to a topic bob may not publish to is not published; one to
	// shared/ is.
	w1, _ := dial5(t, p.Addr, "bob-w1", &paho.Connect{CleanStart: true, KeepAlive: 30, Username: "bob", UsernameFlag: true,
		Password: []byte("builder"), PasswordFlag: true, WillMessage: &paho.WillMessage{Topic: "alice/will", Payload: []byte("denied-will")}})
	w1.conn.Close()
	w2, _ := dial5(t, p.Addr, "bob-w2", &paho.Connect{CleanStart: true, KeepAlive: 30, Username: "bob", UsernameFlag: true,
		Password: []byte("builder"), PasswordFlag: true, WillMessage: &paho.WillMessage{Topic: "shared/will", Payload: []byte("allowed-will")}})
	w2.conn.Close()
	waitFor(t, "the allowed will", 10*time.Second, func() bool { return strings.Contains(subOut.String(), "allowed-will") })
	if strings.Contains(subOut.String(), "denied-will") || strings.Contains(subOut.String(), "sneaky") {
		t.Fatalf("a denied message arrived:\n%s", subOut.String())
	}
	// A retained message alice may not read is not delivered on subscribe.
	mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "bob", "-P", "builder", "-t", "shared/ret", "-m", "kept", "-r", "-q", "1")
	// carol is not in the password file yet.
	if code, _ := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "carol", "-P", "c", "-t", "alice/x", "-m", "x"); code == 0 {
		t.Fatal("unknown user accepted")
	}

	// SIGHUP: carol is added, alice loses shared/#; the connected
	// subscriber stays connected.
	if code, out := mosq(t, "mosquitto_passwd", "-b", pw, "carol", "c"); code != 0 {
		t.Fatalf("mosquitto_passwd: %s", out)
	}
	writeFile(t, acl, "user alice\ntopic readwrite alice/#\nuser bob\ntopic write shared/#\nuser carol\ntopic readwrite carol/#\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", 10*time.Second, func() bool { return strings.Contains(p.Log.String(), "reloaded on SIGHUP") })
	if code, out := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "carol", "-P", "c", "-t", "carol/x", "-m", "x"); code != 0 {
		t.Fatalf("carol after the reload: %d %s", code, out)
	}
	if _, out := mosq(t, "mosquitto_sub", "-h", host, "-p", port, "-u", "alice", "-P", "wonder", "-t", "shared/#", "-C", "1", "-W", "2", "-V", "mqttv5"); !strings.Contains(out, "denied") || strings.Contains(out, "kept") {
		t.Fatalf("alice's subscription to shared/ not denied after the reload: %q", out)
	}
	mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "alice", "-P", "wonder", "-t", "alice/after", "-m", "still-here")
	waitFor(t, "the old subscriber still served", 10*time.Second, func() bool { return strings.Contains(subOut.String(), "still-here") })

	// A broken ACL file on SIGHUP keeps the last good one.
	writeFile(t, acl, "user alice\ntopic sideways alice/#\n")
	_ = p.Cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload logged", 10*time.Second, func() bool {
		return strings.Contains(p.Log.String(), "acl file kept as it was") && strings.Contains(p.Log.String(), "sideways")
	})
	if code, out := mosq(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "carol", "-P", "c", "-t", "carol/y", "-m", "y"); code != 0 {
		t.Fatalf("after a bad reload: %d %s", code, out)
	}
}

// TestSecurityJWTAndHTTP: JWT passwords (HS256) with an acl claim and an
// expiry, and an HTTP authentication service, with anonymous clients off.
func TestSecurityJWTAndHTTP(t *testing.T) {
	bin := nodetest.Build(t)
	secret := "0123456789abcdef0123456789abcdef-secret"
	var calls atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct{ Username, Password string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch {
		case req.Username == "svc-user" && req.Password == "svc-pass":
			_, _ = w.Write([]byte(`{"result":"allow"}`))
		case req.Username == "svc-down":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			_, _ = w.Write([]byte(`{"result":"deny"}`))
		}
	}))
	t.Cleanup(svc.Close)
	p := nodetest.Start(t, bin, "-store", "memory", "-sys-interval", "0", "-jwt-secret", secret, "-auth-http", svc.URL,
		"-allow-anonymous", "false")

	sign := func(key string, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(secret, jwt.MapClaims{"sub": "dev-1", "exp": time.Now().Add(2 * time.Second).Unix(),
		"acl": map[string]any{"pub": []string{"dev/1/#"}, "sub": []string{"cmd/1/#"}}})
	conn := func(id, user, pass string) (*v5c, *paho.Connack, error) {
		return tryDial5(p.Addr, id, &paho.Connect{CleanStart: true, KeepAlive: 30, Username: user, UsernameFlag: user != "",
			Password: []byte(pass), PasswordFlag: pass != ""})
	}
	c, _, err := conn("dev-1", "dev-1", good)
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	sa, _ := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "cmd/1/#"}, {Topic: "cmd/2/#"}}})
	r, _ := c.Publish(ctx, &paho.Publish{Topic: "dev/2/x", QoS: 1, Payload: []byte("x")})
	cancel()
	if sa == nil || sa.Reasons[0] != 0 || sa.Reasons[1] != 0x87 || r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("token acl: suback %+v puback %+v", sa, r)
	}
	// The token expires: DISCONNECT 0x87.
	c.disconnected(t, 0x87, 10*time.Second, "at the token's expiry")
	for name, tok := range map[string]string{
		"bad signature": sign("another-secret-of-32-bytes-or-more!!", jwt.MapClaims{"sub": "dev-1"}),
		"expired":       sign(secret, jwt.MapClaims{"sub": "dev-1", "exp": time.Now().Add(-time.Minute).Unix()}),
		"other user":    sign(secret, jwt.MapClaims{"sub": "dev-9"}),
	} {
		if _, ca, err := conn("dev-1", "dev-1", tok); err == nil || ca == nil || ca.ReasonCode != 0x86 {
			t.Errorf("%s token: connack %+v err %v, want 0x86", name, ca, err)
		}
	}
	waitFor(t, "the three refused tokens logged", 10*time.Second, func() bool { return strings.Count(p.Log.String(), "bad token") >= 3 })

	// The HTTP service: allow, deny, and down (deny by default).
	if _, _, err := conn("svc-1", "svc-user", "svc-pass"); err != nil {
		t.Fatalf("service allow: %v", err)
	}
	if _, ca, err := conn("svc-2", "svc-user", "wrong"); err == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("service deny: %+v %v", ca, err)
	}
	if _, ca, err := conn("svc-3", "svc-down", "x"); err == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("service down: %+v %v", ca, err)
	}
	// Anonymous is off (the service, asked too, denies it: 0x86).
	if _, ca, err := conn("anon", "", ""); err == nil || ca == nil || (ca.ReasonCode != 0x87 && ca.ReasonCode != 0x86) {
		t.Fatalf("anonymous: %+v %v", ca, err)
	}
	if calls.Load() < 3 {
		t.Fatalf("the service was asked %d times", calls.Load())
	}
}

// runBin runs the binary with args, env (nil: this process's) and stdin,
// within 30 s, and returns its exit status and output.
func runBin(t *testing.T, bin string, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes buffer safe for a child process's output and the
// test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecurityClusterKey: three nodes with -cluster-key form a cluster and
// route messages; a stranger on the peer-link and raft ports is refused and
// logged, a node with another key never becomes a member, and the cluster
// keeps routing.
func TestSecurityClusterKey(t *testing.T) {
	const key = "8iNSl3yFn8ujpq0ZL3bJ1iJpgKw8YfH7t0QpY3p3Sko="
	nodes := startCluster(t, 3, "-cluster-key", key)
	n1, n2 := nodes[0], nodes[1]
	sub, _ := dial5(t, n2.Addr, "key-sub", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "key/#"}}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	pub, _ := dial5(t, n1.Addr, "key-pub", nil)
	routed(t, pub, sub, "key/a", 20*time.Second)

	// Strangers on n1's peer-link and raft ports.
	peer, raft := loggedField(t, n1.node, "cluster gossip started", "peer"), loggedField(t, n1.node, "cluster gossip started", "raft")
	for _, addr := range []string{peer, raft} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n" + strings.Repeat("x", 100)))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, c) // until the node closes it
		c.Close()
	}
	waitFor(t, "the strangers logged", 10*time.Second, func() bool {
		l := n1.Log.String()
		return strings.Contains(l, "peer link: connection from") && strings.Contains(l, "raft port: connection from")
	})

	// A node with another key: never a member.
	bin := nodetest.Build(t)
	n4 := &clusterNode{id: "n4", dir: t.TempDir(), gossip: "127.0.0.1:" + itoa(freePort(t))}
	_, gport, _ := strings.Cut(n4.gossip, ":")
	n4.args = []string{"-node-id", "n4", "-data-dir", n4.dir, "-cluster-bind", "127.0.0.1", "-gossip-port", gport,
		"-raft-port", "0", "-peer-port", "0", "-join", nodes[0].gossip, "-bootstrap-expect", "1", "-sys-interval", "0",
		"-cluster-key", "AAAAAAAAAAAAAAAAAAAAAA=="}
	n4.start(t, bin, "")
	waitFor(t, "the foreign node refused", 20*time.Second, func() bool {
		return strings.Contains(n1.Log.String(), "gossip: message from") || strings.Contains(n4.Log.String(), "refused this node's cluster key")
	})
	adm := n1.AdminAddr(5 * time.Second)
	_, body := api(t, adm, "", "GET", "/api/v1/cluster/members", nil)
	for _, m := range items(body) {
		if m["id"] == "n4" {
			t.Fatalf("the node with another key is a member: %v", m)
		}
	}
	routed(t, pub, sub, "key/b", 10*time.Second)
}

// loggedField waits for a log line with msg and returns the value of field.
func loggedField(t *testing.T, p *node, msg, field string) string {
	t.Helper()
	var v string
	waitFor(t, msg, 10*time.Second, func() bool {
		for _, line := range strings.Split(p.Log.String(), "\n") {
			if !strings.Contains(line, `msg="`+msg+`"`) {
				continue
			}
			if i := strings.Index(line, " "+field+"="); i >= 0 {
				rest := line[i+len(field)+2:]
				if j := strings.IndexByte(rest, ' '); j >= 0 {
					rest = rest[:j]
				}
				v = rest
				return true
			}
		}
		return false
	})
	return v
}
