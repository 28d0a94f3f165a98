//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
)

// Deploy tests: `flockmq ctl health` (the image's HEALTHCHECK) against real
// nodes, the systemd unit through systemd-analyze, and, under `make
// deploy-test`, the compose cluster from a freshly built image.

// TestDeployCtlHealth runs `flockmq ctl health` as the image's HEALTHCHECK
// runs it: against a node with a token, without giving the token.
func TestDeployCtlHealth(t *testing.T) {
	bin := nodetest.Build(t)
	_, adm := startAdminNode(t, bin, "tok-h")
	_, port, _ := net.SplitHostPort(adm)
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))

	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		code    int
		out     string // in stdout
		errText string // in stderr
	}{
		{"healthy, no token", []string{"FLOCKMQ_ADMIN=" + adm}, []string{"health"}, 0, "at " + adm + " is healthy", ""},
		{"ready", []string{"FLOCKMQ_ADMIN=" + adm}, []string{"health", "--ready"}, 0, "is ready", ""},
		{"-admin flag", []string{}, []string{"health", "-admin", "http://" + adm}, 0, "is healthy", ""},
		{"json", []string{"FLOCKMQ_ADMIN=" + adm}, []string{"--json", "health"}, 0, `"status": "ok"`, ""},
		// The image's case: only the node's own options in the environment.
		{"admin-listen on every interface", []string{"FLOCKMQ_ADMIN_LISTEN=:" + port}, []string{"health"}, 0, "is healthy", ""},
		{"admin-listen on loopback", []string{"FLOCKMQ_ADMIN_LISTEN=127.0.0.1:" + port}, []string{"health"}, 0, "is healthy", ""},
		{"FLOCKMQ_ADMIN before admin-listen", []string{"FLOCKMQ_ADMIN=" + adm, "FLOCKMQ_ADMIN_LISTEN=" + closed},
			[]string{"health"}, 0, "is healthy", ""},
		{"-admin before admin-listen", []string{"FLOCKMQ_ADMIN_LISTEN=" + adm}, []string{"health", "-admin", closed},
			1, "", "cannot reach its admin endpoint"},
		{"unreachable", []string{"FLOCKMQ_ADMIN=" + closed}, []string{"health"}, 1, "",
			"flockmq ctl: the node at " + closed + " is not healthy: cannot reach its admin endpoint"},
		{"usage", []string{"FLOCKMQ_ADMIN=" + adm}, []string{"health", "now"}, 2, "", "usage: flockmq ctl health [--ready]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := ctl(t, bin, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errText) {
				t.Fatalf("ctl %v with %v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					tc.args, tc.env, code, out, errOut, tc.code, tc.out, tc.errText)
			}
		})
	}

	// A node waiting for a second one to bootstrap raft is alive, not ready.
	q := nodetest.Exec(t, bin, "-listen", "127.0.0.1:0", "-node-id", "lonely", "-data-dir", t.TempDir(),
		"-cluster-bind", "127.0.0.1", "-gossip-port", "0", "-raft-port", "0", "-peer-port", "0",
		"-join", closed, "-bootstrap-expect", "2", "-sys-interval", "0")
	qadm := q.AdminAddr(10 * time.Second)
	if qadm == "" {
		t.Fatalf("no admin endpoint logged:\n%s", q.Log.String())
	}
	env := []string{"FLOCKMQ_ADMIN=" + qadm}
	if code, out, errOut := ctl(t, bin, env, "health"); code != 0 || !strings.Contains(out, "node lonely at "+qadm+" is healthy") {
		t.Fatalf("health of a node without raft leader: exit %d, %q %q; want 0", code, out, errOut)
	}
	// The reasons are /readyz's, in its order (the listeners' come first
	// until the node stops waiting for a leader).
	code, out, errOut := ctl(t, bin, env, "health", "--ready")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "flockmq ctl: node lonely at "+qadm+" is not ready: ") ||
		!strings.HasSuffix(errOut, "this node is not in the raft configuration yet; raft has no leader (HTTP 503)\n") {
		t.Fatalf("health --ready of a node without raft leader: exit %d, stdout %q, stderr %q; want 1 and the reasons", code, out, errOut)
	}

	// Something else on the port (a proxy's error page): the status speaks.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	var so, se strings.Builder
	host := strings.TrimPrefix(srv.URL, "http://")
	if code := runCtl([]string{"health"}, envOf("FLOCKMQ_ADMIN", srv.URL), &so, &se); code != 1 ||
		se.String() != "flockmq ctl: the node at "+host+" is not healthy: it answered /healthz with 502 Bad Gateway (HTTP 502)\n" {
		t.Fatalf("health against a 502 page: exit %d, stderr %q", code, se.String())
	}
}

// TestHealthAddr checks where `ctl health` looks for a node from its
// admin-listen.
func TestHealthAddr(t *testing.T) {
	for listen, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:9000": "127.0.0.1:9000", "[::]:8080": "127.0.0.1:8080",
		"10.0.0.1:8080": "10.0.0.1:8080", "[::1]:8081": "[::1]:8081", "localhost:8080": "localhost:8080",
		"": "", "8080": "", "127.0.0.1:0": "",
	} {
		if got := healthAddr(listen); got != want {
			t.Errorf("healthAddr(%q) = %q, want %q", listen, got, want)
		}
	}
}

// TestDeploySystemdUnit checks deploy/systemd with systemd's own tools:
// `systemd-analyze verify` on a copy of the unit whose ExecStart is a built
// binary (verify wants it to exist), with no warning at all (verify exits 0
// on unknown keys and bad values, and only says so), `systemd-analyze
// security --offline` for the hardening, and the sysusers file.
func TestDeploySystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (Debian package systemd, which .ci/run installs), so the systemd unit cannot be checked")
	}
	raw, err := os.ReadFile("../../deploy/systemd/flockmq.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, line := range []string{
		"ExecStart=/usr/local/bin/flockmq", "ExecReload=/bin/kill -HUP $MAINPID", "Type=simple", "User=flockmq",
		"StateDirectory=flockmq", "Environment=FLOCKMQ_DATA_DIR=%S/flockmq", "EnvironmentFile=-/etc/flockmq/flockmq.env",
		"Restart=on-failure", "LimitNOFILE=1048576", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
	} {
		if !strings.Contains(unit, "\n"+line+"\n") {
			t.Errorf("flockmq.service lacks the line %q", line)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "flockmq.service")
	bin := nodetest.Build(t)
	if err := os.WriteFile(path, []byte(strings.Replace(unit, "\nExecStart=/usr/local/bin/flockmq\n", "\nExecStart="+bin+"\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify flockmq.service: %v\n%s", err, out)
	}
	// Exposure 1.7 when written ("OK"); a threshold of 2.0 catches a
	// dropped ProtectSystem or PrivateDevices.
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: the unit's exposure is above 2.0 (%v):\n%s", err, out)
	}

	sysusers, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Fatal("systemd-sysusers is not installed (Debian package systemd), so flockmq.sysusers cannot be checked")
	}
	// Installed as the README says, in an empty root.
	root := t.TempDir()
	conf, err := os.ReadFile("../../deploy/systemd/flockmq.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/sysusers.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/sysusers.d/flockmq.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(sysusers, "--dry-run", "--root="+root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'flockmq'") {
		t.Errorf("systemd-sysusers --dry-run with flockmq.sysusers: %v\n%s", err, out)
	}
}

// TestDeployCompose is `make deploy-test`'s: it builds the image with `make
// docker`, starts deploy/compose/docker-compose.yml under a project of its
// own with every host port chosen by Docker and a random network, and checks
// the cluster as an operator would: three healthy containers running as
// 65532, ready, three alive voters with one leader, a publish on n1 received
// on n3, and the admin API refusing a request without the token. Everything
// is removed at the end, volumes included.
func TestDeployCompose(t *testing.T) {
	if os.Getenv("FLOCKMQ_DEPLOY_TEST") == "" {
		t.Skip("builds the image and runs a three-container cluster: run it with make deploy-test")
	}
	for _, tool := range [][]string{{"docker", "info", "--format", "{{.ServerVersion}}"}, {"docker-compose", "version", "--short"}} {
		if out, err := exec.Command(tool[0], tool[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s is not usable here, and this test needs Docker and docker-compose: %v\n%s", tool[0], err, out)
		}
	}
	start := time.Now()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	run := func(timeout time.Duration, env []string, name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(5*time.Minute, nil, "make", "docker"); err != nil {
		t.Fatalf("make docker: %v\n%s", err, out)
	}
	t.Logf("make docker: %v", time.Since(start).Round(time.Millisecond))

	project := fmt.Sprintf("flockmq-test-%08x", rand.Uint32())
	// Docker picks every host port (0); the network is a random /24 of
	// 172.29.0.0/16 other than the file's default, retried on a clash
	// with an existing network.
	env := []string{"FLOCKMQ_N1_MQTT=0", "FLOCKMQ_N2_MQTT=0", "FLOCKMQ_N3_MQTT=0",
		"FLOCKMQ_N1_ADMIN=0", "FLOCKMQ_N2_ADMIN=0", "FLOCKMQ_N3_ADMIN=0"}
	compose := func(timeout time.Duration, env []string, args ...string) (string, error) {
		return run(timeout, env, "docker-compose", append([]string{"-p", project, "-f", "deploy/compose/docker-compose.yml"}, args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose(time.Minute, env, "logs", "--no-color", "--tail", "60")
			t.Logf("docker-compose logs:\n%s", out)
		}
		if out, err := compose(2*time.Minute, env, "down", "-v", "--timeout", "30"); err != nil {
			t.Errorf("docker-compose -p %s down -v: %v\n%s", project, err, out)
		}
	})
	for attempt := 1; ; attempt++ {
		third := 84 + rand.IntN(170)
		netEnv := append(env[:len(env):len(env)], "FLOCKMQ_COMPOSE_NET=172.29."+strconv.Itoa(third))
		out, err := compose(3*time.Minute, netEnv, "up", "-d")
		if err == nil {
			env = netEnv
			break
		}
		if !strings.Contains(out, "overlaps") || attempt == 3 {
			t.Fatalf("docker-compose -p %s up -d: %v\n%s", project, err, out)
		}
		if out, err := compose(time.Minute, netEnv, "down", "-v"); err != nil {
			t.Fatalf("docker-compose down after a network clash: %v\n%s", err, out)
		}
	}
	t.Logf("up: %v", time.Since(start).Round(time.Millisecond))

	// Every container healthy: the image's HEALTHCHECK, `flockmq ctl health`.
	out, err := compose(time.Minute, env, "ps", "-q")
	ids := strings.Fields(out)
	if err != nil || len(ids) != 3 {
		t.Fatalf("docker-compose ps -q: %v, %q; want three containers", err, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := run(time.Minute, nil, "docker", append([]string{"inspect", "-f", "{{.Config.User}} {{.State.Status}} {{.State.Health.Status}}"}, ids...)...)
		if err != nil {
			t.Fatalf("docker inspect: %v\n%s", err, out)
		}
		if strings.Count(out, "65532:65532 running healthy") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers not all running as 65532:65532 and healthy within 90 s:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("healthy: %v", time.Since(start).Round(time.Millisecond))

	// The published ports Docker chose.
	published := func(service, port string) string {
		t.Helper()
		out, err := compose(time.Minute, env, "port", service, port)
		_, p, perr := net.SplitHostPort(strings.TrimSpace(out))
		if err != nil || perr != nil {
			t.Fatalf("docker-compose port %s %s: %v %v\n%s", service, port, err, perr, out)
		}
		return net.JoinHostPort("127.0.0.1", p)
	}
	const token = "change-me-admin-token" // deploy/compose/flockmq.env
	bin := filepath.Join(root, "bin", "flockmq")
	var admin, mqtt [3]string
	for i := range 3 {
		service := "n" + strconv.Itoa(i+1)
		admin[i], mqtt[i] = published(service, "8080"), published(service, "1883")
		waitFor(t, service+" ready on its published admin port", 60*time.Second, func() bool {
			code, body := api(t, admin[i], token, "GET", "/readyz", nil)
			return code == 200 && body["ready"] == true && body["node"] == service
		})
		// A published port is not loopback inside the container: the API
		// wants the token.
		if code, body := api(t, admin[i], "", "GET", "/api/v1/node", nil); code != 401 {
			t.Fatalf("%s: /api/v1/node without the token: %d %v, want 401", service, code, body)
		}
	}

	// `flockmq ctl members`: three alive voters and one leader, as every
	// node sees it.
	for i := range 3 {
		ctlEnv := []string{"FLOCKMQ_ADMIN=" + admin[i], "FLOCKMQ_ADMIN_TOKEN=" + token}
		var last string
		members := func() bool {
			code, out, errOut := ctl(t, bin, ctlEnv, "members", "--json")
			last = fmt.Sprintf("exit %d: %s%s", code, out, errOut)
			var l struct {
				Data []struct {
					GossipState string `json:"gossip_state"`
					RaftRole    string `json:"raft_role"`
					Voter       bool   `json:"voter"`
				}
			}
			if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Data) != 3 {
				return false
			}
			leaders := 0
			for _, m := range l.Data {
				if m.GossipState != "alive" || !m.Voter {
					return false
				}
				if m.RaftRole == "leader" {
					leaders++
				}
			}
			return leaders == 1
		}
		for deadline := time.Now().Add(30 * time.Second); !members(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("ctl members on n%d: not three alive voters and a leader within 30 s: %s", i+1, last)
			}
		}
	}
	if code, out, errOut := ctl(t, bin, []string{"FLOCKMQ_ADMIN=" + admin[0], "FLOCKMQ_ADMIN_TOKEN=" + token}, "members"); code == 0 {
		t.Logf("flockmq ctl members:\n%s", out)
	} else {
		t.Fatalf("ctl members: exit %d: %s", code, errOut)
	}

	// A publish on n1 reaches a subscriber on n3.
	sub, _ := dial5(t, mqtt[2], "deploy-sub", &paho.Connect{CleanStart: true, KeepAlive: 30})
	sub.sub(t, paho.SubscribeOptions{Topic: "deploy/#", QoS: 1})
	pub, _ := dial5(t, mqtt[0], "deploy-pub", &paho.Connect{CleanStart: true, KeepAlive: 30})
	d := routed(t, pub, sub, "deploy/probe", 10*time.Second)
	pub.pub(t, &paho.Publish{Topic: "deploy/n1", QoS: 1, Payload: []byte("from n1")})
	if m := sub.next(t, 5*time.Second); m.Topic != "deploy/n1" || string(m.Payload) != "from n1" {
		t.Fatalf("n3 received %s %q, want deploy/n1 \"from n1\"", m.Topic, m.Payload)
	}
	t.Logf("n1 -> n3 routed after %v; checks done at %v", d.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
