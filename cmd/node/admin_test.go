//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/cmd/node/nodetest"
)

// Admin endpoint tests: real HTTP against real nodes, and `flockmq ctl` run
// as a user runs it.

// api makes one admin request and decodes the JSON answer.
func api(t *testing.T, addr, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %v\n%s", method, path, err, raw)
		}
	} else {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

// items returns the data of a list answer.
func items(body map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := body["data"].([]any)
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// ids returns the values of key in the items of a list answer.
func ids(body map[string]any, key string) []string {
	var out []string
	for _, m := range items(body) {
		s, _ := m[key].(string)
		out = append(out, s)
	}
	return out
}

// ctl runs `flockmq ctl args` and returns its exit status and output.
func ctl(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	return runBin(t, bin, env, "", append([]string{"ctl"}, args...)...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminSingleNode runs the operator's day on one node started as
// `make run` starts it (raft store), with a token.
func TestAdminSingleNode(t *testing.T) {
	bin := nodetest.Build(t)
	p, adm := startAdminNode(t, bin, "tok-1", "-admin-pprof", "true")
	const tok = "tok-1"

	if code, body := api(t, adm, "", "GET", "/healthz", nil); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
	if code, body := api(t, adm, "", "GET", "/readyz", nil); code != 200 || body["ready"] != true {
		t.Fatalf("readyz: %d %v", code, body)
	}
	if code, body := api(t, adm, "", "GET", "/api/v1/node", nil); code != 401 || body["error"] == nil {
		t.Fatalf("no token: %d %v, want 401 with an error", code, body)
	}
	if code, _ := api(t, adm, tok, "GET", "/debug/pprof/cmdline", nil); code != 200 {
		t.Fatalf("admin-pprof: /debug/pprof/cmdline %d", code)
	}
	if code, _ := api(t, adm, "", "GET", "/debug/pprof/cmdline", nil); code != 401 {
		t.Fatalf("pprof without the token: %d, want 401", code)
	}

	// A persistent v5 client with a user name.
	c, _ := dial5(t, p.Addr, "adm-c1", &paho.Connect{CleanStart: true, KeepAlive: 30, Username: "alice", UsernameFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}})
	if _, err := c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "t/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	code, body := api(t, adm, tok, "GET", "/api/v1/clients?prefix=adm-", nil)
	list := items(body)
	if code != 200 || len(list) != 1 || list[0]["client_id"] != "adm-c1" || list[0]["username"] != "alice" ||
		list[0]["subscriptions"] != 1.0 || list[0]["protocol_version"] != 5.0 || list[0]["session_expiry"] != 300.0 {
		t.Fatalf("clients: %d %v", code, body)
	}
	if _, body := api(t, adm, tok, "GET", "/api/v1/clients?username=bob", nil); len(items(body)) != 0 {
		t.Fatalf("username filter: %v", body)
	}
	if code, body := api(t, adm, tok, "GET", "/api/v1/clients/adm-c1", nil); code != 200 || body["remote_address"] == nil {
		t.Fatalf("get client: %d %v", code, body)
	}
	if _, body := api(t, adm, tok, "GET", "/api/v1/subscriptions?client=adm-c1", nil); len(items(body)) != 1 ||
		items(body)[0]["filter"] != "t/#" || items(body)[0]["qos"] != 1.0 {
		t.Fatalf("subscriptions: %v", body)
	}

	// Publish through the API: the client gets it, with its properties.
	code, body = api(t, adm, tok, "POST", "/api/v1/publish", map[string]any{"topic": "t/x", "payload": "hello",
		"qos": 1, "retain": true, "properties": map[string]any{"user_properties": []map[string]string{{"key": "from", "value": "ops"}}}})
	if code != 200 {
		t.Fatalf("publish: %d %v", code, body)
	}
	select {
	case m := <-c.msgs:
		if string(m.Payload) != "hello" || m.Properties == nil || m.Properties.User.Get("from") != "ops" {
			t.Fatalf("received %q %+v", m.Payload, m.Properties)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the published message did not arrive")
	}
	if code, body := api(t, adm, tok, "GET", "/api/v1/retained/t%2Fx", nil); code != 200 || body["payload"] != "hello" {
		t.Fatalf("retained: %d %v", code, body)
	}

	// ctl, with the token from the environment.
	env := []string{"FLOCKMQ_ADMIN=" + adm, "FLOCKMQ_ADMIN_TOKEN=" + tok}
	if code, out, errs := ctl(t, bin, env, "status"); code != 0 || !strings.Contains(out, "raft state") || !strings.Contains(out, "leader") {
		t.Fatalf("ctl status: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := ctl(t, bin, env, "clients", "--filter", "adm-"); code != 0 || !strings.Contains(out, "adm-c1") || !strings.Contains(out, "alice") {
		t.Fatalf("ctl clients: %d\n%s%s", code, out, errs)
	}
	code, out, errs := ctl(t, bin, env, "retained", "--json")
	var rl struct{ Data []struct{ Topic string } }
	if code != 0 || json.Unmarshal([]byte(out), &rl) != nil || len(rl.Data) != 1 || rl.Data[0].Topic != "t/x" {
		t.Fatalf("ctl retained --json: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := ctl(t, bin, env, "retained", "rm", "t/x"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("ctl retained rm: %d\n%s%s", code, out, errs)
	}
	if code, _, errs := ctl(t, bin, env, "retained", "rm", "t/x"); code != 1 || !strings.Contains(errs, "no retained message") {
		t.Fatalf("ctl retained rm again: %d %s, want 1 and a sentence", code, errs)
	}
	if code, _, errs := ctl(t, bin, []string{"FLOCKMQ_ADMIN=" + adm}, "status"); code != 1 || !strings.Contains(errs, "token") {
		t.Fatalf("ctl without the token: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, bin, env, "publish", "a/+", "x"); code != 1 || !strings.Contains(errs, "topic") {
		t.Fatalf("ctl publish to a filter: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, bin, env, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("ctl unknown command: %d %s", code, errs)
	}

	// Kick: the v5 client gets DISCONNECT 0x98; its session stays.
	if code, out, errs := ctl(t, bin, env, "kick", "adm-c1"); code != 0 || !strings.Contains(out, "kicked adm-c1") {
		t.Fatalf("ctl kick: %d\n%s%s", code, out, errs)
	}
	c.disconnected(t, 0x98, 10*time.Second, "the kicked client")
	var sess []map[string]any
	waitFor(t, "the kicked session listed offline", 10*time.Second, func() bool {
		_, body := api(t, adm, tok, "GET", "/api/v1/sessions?prefix=adm-", nil)
		sess = items(body)
		return len(sess) == 1 && sess[0]["connected"] == false
	})
	if sess[0]["session_expiry"] != 300.0 || sess[0]["subscriptions"] != 1.0 {
		t.Fatalf("offline session: %v", sess[0])
	}
	if _, body := api(t, adm, tok, "GET", "/api/v1/sessions?connected=true", nil); len(items(body)) != 0 {
		t.Fatalf("connected=true lists %v", body)
	}
	// Delete it: a reconnect finds no session.
	if code, body := api(t, adm, tok, "DELETE", "/api/v1/sessions/adm-c1", nil); code != 200 {
		t.Fatalf("delete session: %d %v", code, body)
	}
	if _, body := api(t, adm, tok, "GET", "/api/v1/sessions", nil); len(items(body)) != 0 {
		t.Fatalf("sessions after delete: %v", body)
	}
	_, ca := dial5(t, p.Addr, "adm-c1", &paho.Connect{CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: ptr(uint32(300))}})
	if ca.SessionPresent {
		t.Fatal("session present after the API deleted it")
	}

	// Stats and metrics.
	code, body = api(t, adm, tok, "GET", "/api/v1/stats", nil)
	st, _ := body["stats"].(map[string]any)
	if code != 200 || st["messages_sent"] == nil || st["messages_sent"].(float64) < 1 || body["cluster"] == nil {
		t.Fatalf("stats: %d %v", code, body)
	}
	code, body = api(t, adm, tok, "GET", "/metrics", nil)
	if raw, _ := body["raw"].(string); code != 200 || !strings.Contains(raw, "# TYPE flockmq_messages_sent_total counter") ||
		!strings.Contains(raw, "flockmq_raft_apply_seconds_bucket") {
		t.Fatalf("metrics: %d\n%.2000s", code, body["raw"])
	}
}

// TestAdminJSONLogs: -log-format json writes one JSON object per line.
func TestAdminJSONLogs(t *testing.T) {
	bin := nodetest.Build(t)
	p := nodetest.Exec(t, bin, "-listen", "127.0.0.1:0", "-store", "memory", "-sys-interval", "0", "-log-format", "json")
	waitFor(t, "the serving line", 20*time.Second, func() bool { return strings.Contains(p.Log.String(), "flockmq serving MQTT") })
	for _, line := range strings.Split(strings.TrimSpace(p.Log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["msg"] == nil || m["level"] == nil {
			t.Fatalf("not a JSON log line: %q (%v)", line, err)
		}
	}
	if code := nodetest.Exec(t, bin, "-log-format", "xml").ExitStatus(t, 10*time.Second); code != 2 {
		t.Fatalf("-log-format xml: exit %d, want 2", code)
	}
}

// TestAdminCluster runs the cluster's operations on three nodes through the
// API and ctl: members, cluster-wide client lists and a kick across nodes,
// leadership transfer from a follower, a snapshot, a fourth node joining
// through `ctl join`, and the removal of a dead node.
func TestAdminCluster(t *testing.T) {
	bin := nodetest.Build(t)
	nodes := startCluster(t, 3)
	adm := make([]string, len(nodes))
	for i, n := range nodes {
		if adm[i] = n.AdminAddr(10 * time.Second); adm[i] == "" {
			t.Fatalf("%s logged no admin endpoint", n.id)
		}
	}
	env := func(i int) []string { return []string{"FLOCKMQ_ADMIN=" + adm[i]} }

	// Members: three alive voters, one leader, as every node sees it.
	var leader string
	waitFor(t, "three alive voters and a leader", 20*time.Second, func() bool {
		_, body := api(t, adm[1], "", "GET", "/api/v1/cluster/members", nil)
		ms := items(body)
		leaders, voters := 0, 0
		for _, m := range ms {
			if m["gossip_state"] == "alive" && m["voter"] == true {
				voters++
			}
			if m["raft_role"] == "leader" {
				leaders++
				leader, _ = m["id"].(string)
			}
			if m["admin_address"] == nil || m["version"] == nil {
				return false
			}
		}
		return len(ms) == 3 && voters == 3 && leaders == 1
	})
	if code, out, errs := ctl(t, bin, env(0), "members"); code != 0 || strings.Count(out, "alive") != 3 || !strings.Contains(out, "leader") {
		t.Fatalf("ctl members: %d\n%s%s", code, out, errs)
	}

	// One client per node; every node lists all three, with their nodes.
	cs := make([]*v5c, 3)
	for i, n := range nodes {
		cs[i], _ = dial5(t, n.Addr, "cc-"+n.id, nil)
	}
	waitFor(t, "cluster-wide client list", 10*time.Second, func() bool {
		_, body := api(t, adm[0], "", "GET", "/api/v1/clients?prefix=cc-", nil)
		list := items(body)
		if len(list) != 3 {
			return false
		}
		for i, c := range list {
			if c["client_id"] != "cc-"+nodes[i].id || c["node"] != nodes[i].id {
				return false
			}
		}
		return true
	})
	if _, body := api(t, adm[0], "", "GET", "/api/v1/clients?node="+nodes[1].id, nil); strings.Join(ids(body, "client_id"), ",") != "cc-"+nodes[1].id {
		t.Fatalf("?node=%s: %v", nodes[1].id, body)
	}
	// Kick the client of n3 through n1.
	if code, out, errs := ctl(t, bin, env(0), "kick", "cc-"+nodes[2].id); code != 0 {
		t.Fatalf("ctl kick across nodes: %d\n%s%s", code, out, errs)
	}
	cs[2].disconnected(t, 0x98, 10*time.Second, "the client kicked through another node")

	// Leadership transfer asked of a follower: ctl follows the 409 to the
	// leader.
	follower := 0
	for i, n := range nodes {
		if n.id != leader {
			follower = i
			break
		}
	}
	code, body := api(t, adm[follower], "", "POST", "/api/v1/cluster/leader/transfer", nil)
	if code != 409 || body["leader"] == nil {
		t.Fatalf("transfer on a follower: %d %v, want 409 naming the leader", code, body)
	}
	if code, out, errs := ctl(t, bin, env(follower), "leader", "transfer"); code != 0 || !strings.Contains(out, "leadership moved from "+leader) {
		t.Fatalf("ctl leader transfer: %d\n%s%s", code, out, errs)
	}
	waitFor(t, "a new leader", 10*time.Second, func() bool {
		code, body := api(t, adm[follower], "", "GET", "/api/v1/cluster/leader", nil)
		return code == 200 && body["id"] != leader && body["id"] != nil
	})
	if code, out, errs := ctl(t, bin, env(1), "snapshot"); code != 0 || !strings.Contains(out, "snapshot of "+nodes[1].id) {
		t.Fatalf("ctl snapshot: %d\n%s%s", code, out, errs)
	}

	// A fourth node, started alone without bootstrapping, joins through ctl.
	n4 := &clusterNode{id: "n4", dir: t.TempDir(), gossip: "127.0.0.1:" + itoa(freePort(t))}
	_, gport, _ := strings.Cut(n4.gossip, ":")
	n4.args = []string{"-node-id", "n4", "-data-dir", n4.dir, "-cluster-bind", "127.0.0.1", "-gossip-port", gport,
		"-raft-port", "0", "-peer-port", "0", "-bootstrap", "false", "-sys-interval", "0"}
	n4.start(t, bin, "")
	adm4 := n4.AdminAddr(10 * time.Second)
	if adm4 == "" {
		t.Fatalf("n4 logged no admin endpoint:\n%s", n4.Log.String())
	}
	if code, body := api(t, adm4, "", "GET", "/readyz", nil); code != 503 || body["ready"] != false {
		t.Fatalf("n4 before joining: readyz %d %v, want 503", code, body)
	}
	if code, out, errs := ctl(t, bin, []string{"FLOCKMQ_ADMIN=" + adm4}, "join", nodes[0].gossip); code != 0 {
		t.Fatalf("ctl join: %d\n%s%s", code, out, errs)
	}
	waitFor(t, "n4 in raft and ready", 30*time.Second, func() bool {
		code, _ := api(t, adm4, "", "GET", "/readyz", nil)
		_, body := api(t, adm[0], "", "GET", "/api/v1/cluster/members", nil)
		for _, m := range items(body) {
			if m["id"] == "n4" && m["raft_role"] != "none" && m["gossip_state"] == "alive" {
				return code == 200
			}
		}
		return false
	})
	if !n4.WaitServing(20 * time.Second) {
		t.Fatalf("n4 does not serve MQTT after joining:\n%s", n4.Log.String())
	}

	// Remove: a live node is refused without force; a dead one goes.
	victim := nodes[2]
	if victim.id == leader {
		victim = nodes[1]
	}
	var lidx int
	_, body = api(t, adm[0], "", "GET", "/api/v1/cluster/leader", nil)
	for i, n := range nodes {
		if n.id == body["id"] {
			lidx = i
		}
	}
	if code, body := api(t, adm[lidx], "", "DELETE", "/api/v1/cluster/members/"+victim.id, nil); code != 409 || !strings.Contains(body["error"].(string), "alive") {
		t.Fatalf("remove a live node: %d %v, want 409", code, body)
	}
	victim.Kill9(t)
	waitFor(t, victim.id+" seen dead", 30*time.Second, func() bool {
		_, body := api(t, adm[lidx], "", "GET", "/api/v1/cluster/members", nil)
		for _, m := range items(body) {
			if m["id"] == victim.id {
				return m["gossip_state"] == "dead" || m["gossip_state"] == "suspect"
			}
		}
		return false
	})
	waitFor(t, victim.id+" removed", 30*time.Second, func() bool {
		code, _, _ := ctl(t, bin, env(follower), "remove", victim.id)
		if code != 0 {
			return false
		}
		_, body := api(t, adm[lidx], "", "GET", "/api/v1/cluster/members", nil)
		for _, m := range items(body) {
			if m["id"] == victim.id && m["raft_role"] != "none" {
				return false
			}
		}
		return true
	})
	if code, _, errs := ctl(t, bin, env(lidx), "remove", "nobody"); code != 1 || !strings.Contains(errs, "not in the raft configuration") {
		t.Fatalf("ctl remove nobody: %d %s", code, errs)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// startAdminNode starts a single raft node whose admin API needs token and
// returns it with its admin address.
func startAdminNode(t *testing.T, bin, token string, extra ...string) (*nodetest.Process, string) {
	t.Helper()
	p := nodetest.Start(t, bin, append([]string{"-store", "raft", "-data-dir", t.TempDir(), "-raft-bind", "127.0.0.1:0",
		"-sys-interval", "0", "-admin-token", token}, extra...)...)
	adm := p.AdminAddr(10 * time.Second)
	if adm == "" {
		t.Fatalf("no admin endpoint logged:\n%s", p.Log.String())
	}
	return p, adm
}

// TestCtlLeave: `flockmq ctl leave` (the Kubernetes preStop hook) stops the
// node as SIGTERM does: its v5 client gets DISCONNECT 0x8B, the process
// exits 0, and ctl returns once the node is gone. Without the token the
// request is refused and the node keeps serving.
func TestCtlLeave(t *testing.T) {
	p, adm := startAdminNode(t, nodetest.Build(t), "tok-2")
	var so, se strings.Builder
	if code := runCtl([]string{"-admin", adm, "leave"}, envOf(), &so, &se); code != 1 || !strings.Contains(se.String(), "401") {
		t.Fatalf("leave without the token: exit %d, stderr %q; want 1 naming the 401", code, se.String())
	}
	c, _ := dial5(t, p.Addr, "leave-c", nil)
	so.Reset()
	se.Reset()
	// The token from a file, as the Kubernetes preStop hook reads it.
	tokFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokFile, []byte("tok-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := runCtl([]string{"-admin", adm, "leave"}, envOf("FLOCKMQ_ADMIN_TOKEN_FILE", tokFile), &so, &se); code != 0 {
		t.Fatalf("leave: exit %d, stderr %q", code, se.String())
	}
	if !strings.Contains(so.String(), "left the cluster and stopped") {
		t.Fatalf("leave printed %q", so.String())
	}
	// ctl returned once the admin endpoint stopped answering, the node's
	// last step before it exits.
	if st := p.ExitStatus(t, 5*time.Second); st != 0 {
		t.Fatalf("the node exited with %d, want 0:\n%s", st, p.Log.String())
	}
	c.disconnected(t, 0x8B, 5*time.Second, "the client of the node that left (server shutting down)")
	if !strings.Contains(p.Log.String(), `requested="admin API (leave)"`) {
		t.Fatalf("no log of the requested stop:\n%s", p.Log.String())
	}
}
