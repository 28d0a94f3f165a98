package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// node is one compose service. Its client address is on the side network
// (sideIP), which the partition leaves alone, so that the host reaches an
// isolated node; the cluster talks on the compose network (clusterIP).
type node struct {
	name      string // n1, n2, n3: service name and node id
	container string // container id
	clusterIP string
	sideIP    string
}

func (n *node) mqtt() string  { return n.sideIP + ":1883" }
func (n *node) admin() string { return n.sideIP + ":8080" }

type cluster struct {
	cfg     config
	logf    func(string, ...any)
	project string
	env     []string
	netName string // the compose network
	sideNet string // the network the host's clients use
	nodes   []*node

	mu      sync.Mutex
	faulted map[string]bool // nodes clients should try last
	kills   []killRec
	events  *exec.Cmd
	files   []string // the compose files, after -f
	tmp     string   // a directory of this run's own
	dieMu   sync.Mutex
	dies    []dieRec
}

type killRec struct {
	node string
	at   time.Time
}

type dieRec struct {
	node string
	at   time.Time
	exit string
}

func runCmd(ctx context.Context, dir string, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (cl *cluster) compose(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	pre := []string{"-p", cl.project}
	for _, f := range cl.files {
		pre = append(pre, "-f", f)
	}
	return runCmd(ctx, cl.cfg.root, cl.env, timeout, "docker-compose", append(pre, args...)...)
}

// composeFiles sets the compose files: deploy/compose's, and with -log-level
// an override of the nodes' FLOCKMQ_LOG_LEVEL in dir.
func (cl *cluster) composeFiles(dir string) error {
	cl.files = []string{"deploy/compose/docker-compose.yml"}
	if cl.cfg.logLevel == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString("version: \"3.8\"\nservices:\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "  n%d:\n    environment:\n      FLOCKMQ_LOG_LEVEL: %s\n", i, cl.cfg.logLevel)
	}
	p := filepath.Join(dir, "log-level.yml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		return err
	}
	cl.files = append(cl.files, p)
	return nil
}

// saveLogs writes each node's container log (every run of it) to
// dir/<project>/<node>.log.
func (cl *cluster) saveLogs(dir string) {
	if dir == "" || len(cl.nodes) == 0 {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(cl.cfg.root, dir)
	}
	dir = filepath.Join(dir, cl.project)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		cl.logf("saving the node logs: %v", err)
		return
	}
	for _, n := range cl.nodes {
		out, err := runCmd(context.Background(), cl.cfg.root, nil, time.Minute, "docker", "logs", "-t", n.container)
		if err != nil {
			cl.logf("saving the log of %s: %v", n.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(out), 0o644); err != nil {
			cl.logf("saving the log of %s: %v", n.name, err)
		}
	}
	cl.logf("node logs saved in %s", dir)
}

func (cl *cluster) docker(ctx context.Context, args ...string) (string, error) {
	return runCmd(ctx, cl.cfg.root, nil, time.Minute, "docker", args...)
}

// up starts the project on a random /24 of 172.30.0.0/16 (TestDeployCompose
// uses 172.29.x), attaches every node to a side network of its own, and waits
// for three healthy, ready containers and three alive voters with a leader.
func (cl *cluster) up(ctx context.Context) error {
	for _, tool := range [][]string{{"docker", "info", "--format", "{{.ServerVersion}}"}, {"docker-compose", "version", "--short"}} {
		if _, err := runCmd(ctx, cl.cfg.root, nil, 30*time.Second, tool[0], tool[1:]...); err != nil {
			return fmt.Errorf("this checker needs Docker and docker-compose: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "flockmq-chaos-")
	if err != nil {
		return err
	}
	cl.tmp = tmp
	if err := cl.composeFiles(tmp); err != nil {
		return err
	}
	base := []string{"FLOCKMQ_N1_MQTT=0", "FLOCKMQ_N2_MQTT=0", "FLOCKMQ_N3_MQTT=0",
		"FLOCKMQ_N1_ADMIN=0", "FLOCKMQ_N2_ADMIN=0", "FLOCKMQ_N3_ADMIN=0"}
	var prefix string
	for attempt := 1; ; attempt++ {
		prefix = "172.30." + strconv.Itoa(10+rand.IntN(240))
		cl.env = append(base[:len(base):len(base)], "FLOCKMQ_COMPOSE_NET="+prefix)
		cl.logf("docker-compose -p %s up -d (network %s.0/24)", cl.project, prefix)
		out, err := cl.compose(ctx, 3*time.Minute, "up", "-d")
		if err == nil {
			break
		}
		if !strings.Contains(out+err.Error(), "overlaps") || attempt == 3 {
			return err
		}
		cl.compose(ctx, time.Minute, "down", "-v")
	}
	cl.netName = cl.project + "_flockmq"
	// The side network: a /24 of 172.31.0.0/16, each node at a fixed
	// address (.11 to .13) that survives its restarts.
	var side string
	for attempt := 1; ; attempt++ {
		cl.sideNet = cl.project + "-side"
		side = "172.31." + strconv.Itoa(10+rand.IntN(240))
		_, err := cl.docker(ctx, "network", "create", "--subnet", side+".0/24", cl.sideNet)
		if err == nil {
			break
		}
		if attempt == 3 {
			return err
		}
	}
	for i := 1; i <= 3; i++ {
		name := "n" + strconv.Itoa(i)
		out, err := cl.compose(ctx, time.Minute, "ps", "-q", name)
		if err != nil || strings.TrimSpace(out) == "" {
			return fmt.Errorf("no container for %s: %v %q", name, err, out)
		}
		n := &node{name: name, container: strings.TrimSpace(out), clusterIP: prefix + "." + strconv.Itoa(10+i)}
		n.sideIP = side + "." + strconv.Itoa(10+i)
		if _, err := cl.docker(ctx, "network", "connect", "--ip", n.sideIP, cl.sideNet, n.container); err != nil {
			return err
		}
		cl.nodes = append(cl.nodes, n)
	}
	cl.faulted = map[string]bool{}
	if err := cl.waitHealthy(ctx, 120*time.Second); err != nil {
		return err
	}
	return nil
}

// teardown removes everything: the project with its volumes and the side
// network (unless -keep).
func (cl *cluster) teardown() {
	if cl.events != nil && cl.events.Process != nil {
		cl.events.Process.Kill()
	}
	if cl.tmp != "" && !cl.cfg.keep {
		defer os.RemoveAll(cl.tmp)
	}
	if cl.env == nil {
		return
	}
	cl.saveLogs(cl.cfg.logs)
	if cl.cfg.keep {
		cl.logf("-keep: leaving project %s running (docker-compose -p %s -f deploy/compose/docker-compose.yml down -v; docker network rm %s)", cl.project, cl.project, cl.sideNet)
		return
	}
	ctx := context.Background()
	for _, n := range cl.nodes {
		cl.docker(ctx, "unpause", n.container)
		cl.docker(ctx, "network", "disconnect", "-f", cl.sideNet, n.container)
	}
	if _, err := cl.compose(ctx, 3*time.Minute, "down", "-v", "--timeout", "10"); err != nil {
		cl.logf("teardown: %v", err)
	}
	if cl.sideNet != "" {
		cl.docker(ctx, "network", "rm", cl.sideNet)
	}
}

// startEvents records every container death of the project.
func (cl *cluster) startEvents() {
	cmd := exec.Command("docker", "events", "--filter", "label=com.docker.compose.project="+cl.project,
		"--filter", "event=die", "--format", `{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cl.logf("docker events: %v", err)
		return
	}
	if err := cmd.Start(); err != nil {
		cl.logf("docker events: %v", err)
		return
	}
	cl.events = cmd
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			name := f[0]
			// project_n1_1 or project-n1-1
			for _, n := range cl.nodes {
				if strings.Contains(name, "_"+n.name+"_") || strings.Contains(name, "-"+n.name+"-") {
					name = n.name
				}
			}
			cl.dieMu.Lock()
			cl.dies = append(cl.dies, dieRec{node: name, at: time.Now(), exit: f[1]})
			cl.dieMu.Unlock()
		}
	}()
}

// stopEvents returns the deaths that no kill of ours explains.
func (cl *cluster) stopEvents() []string {
	time.Sleep(time.Second)
	if cl.events != nil && cl.events.Process != nil {
		cl.events.Process.Kill()
		cl.events.Wait()
		cl.events = nil
	}
	cl.dieMu.Lock()
	defer cl.dieMu.Unlock()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var bad []string
	for _, d := range cl.dies {
		ok := false
		for _, k := range cl.kills {
			if k.node == d.node && !d.at.Before(k.at.Add(-time.Second)) && d.at.Before(k.at.Add(35*time.Second)) {
				ok = true
			}
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("%s died at %s (exit %s) without a kill", d.node, d.at.Format("15:04:05.000"), d.exit))
		}
	}
	return bad
}

func (cl *cluster) allRunning() []string {
	var out []string
	for _, n := range cl.nodes {
		s, err := cl.docker(context.Background(), "inspect", "-f", "{{.State.Status}} restarts={{.RestartCount}}", n.container)
		out = append(out, n.name+": "+strings.TrimSpace(s)+errText(err))
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

func (cl *cluster) node(name string) *node {
	for _, n := range cl.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (cl *cluster) setFaulted(name string, on bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if on {
		cl.faulted[name] = true
	} else {
		delete(cl.faulted, name)
	}
}

// calm: no fault under way.
func (cl *cluster) calm() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.faulted) == 0
}

// order is the order a client tries the nodes in: its home first, the faulted
// ones last.
func (cl *cluster) order(home int) []*node {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var good, bad []*node
	for i := range cl.nodes {
		n := cl.nodes[(home+i)%len(cl.nodes)]
		if cl.faulted[n.name] {
			bad = append(bad, n)
		} else {
			good = append(good, n)
		}
	}
	return append(good, bad...)
}

var httpc = &http.Client{Timeout: 3 * time.Second}

func (cl *cluster) api(n *node, path string, v any) (int, error) {
	req, err := http.NewRequest("GET", "http://"+n.admin()+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.cfg.token)
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, fmt.Errorf("%s on %s: HTTP %d", path, n.name, resp.StatusCode)
	}
	return 200, json.NewDecoder(resp.Body).Decode(v)
}

type leaderInfo struct {
	ID   string `json:"id"`
	Term uint64 `json:"term"`
}

func (cl *cluster) leaderOn(n *node) (leaderInfo, error) {
	var l leaderInfo
	_, err := cl.api(n, "/api/v1/cluster/leader", &l)
	return l, err
}

type memberList struct {
	Data []struct {
		ID          string `json:"id"`
		GossipState string `json:"gossip_state"`
		RaftRole    string `json:"raft_role"`
		Voter       bool   `json:"voter"`
	} `json:"data"`
}

// healthy: every node ready and seeing three alive voters, one leader.
func (cl *cluster) healthy() (string, bool) {
	for _, n := range cl.nodes {
		var rd struct {
			Ready bool `json:"ready"`
		}
		if _, err := cl.api(n, "/readyz", &rd); err != nil || !rd.Ready {
			return n.name + " not ready" + errText(err), false
		}
		var m memberList
		if _, err := cl.api(n, "/api/v1/cluster/members", &m); err != nil {
			return n.name + ": " + err.Error(), false
		}
		alive, leaders := 0, 0
		for _, x := range m.Data {
			if x.GossipState == "alive" && x.Voter {
				alive++
			}
			if x.RaftRole == "leader" {
				leaders++
			}
		}
		if alive != 3 || leaders != 1 {
			return fmt.Sprintf("%s sees %d alive voters and %d leaders", n.name, alive, leaders), false
		}
	}
	return "", true
}

func (cl *cluster) waitHealthy(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		why, ok := cl.healthy()
		if ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster not healthy within %v: %s", d, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// join asks node v to join the gossip of the others (the operator's repair:
// POST /api/v1/cluster/join, `flockmq ctl join`).
func (cl *cluster) join(v *node) error {
	var last error
	for _, n := range cl.nodes {
		if n == v {
			continue
		}
		body := strings.NewReader(`{"address":"` + n.clusterIP + `:7946"}`)
		req, err := http.NewRequest("POST", "http://"+v.admin()+"/api/v1/cluster/join", body)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cl.cfg.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return nil
		}
		last = fmt.Errorf("join on %s: HTTP %d", v.name, resp.StatusCode)
	}
	return last
}

func (cl *cluster) leader() (string, error) {
	var last error
	for _, n := range cl.nodes {
		l, err := cl.leaderOn(n)
		if err == nil && l.ID != "" {
			return l.ID, nil
		}
		last = err
	}
	return "", fmt.Errorf("no node names a raft leader: %v", last)
}
