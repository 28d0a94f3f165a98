package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ctlUsage is `flockmq ctl`'s help; docs/admin.md mirrors it.
const ctlUsage = `usage: flockmq ctl [flags] COMMAND [ARGS]

Operates a FlockMQ node through its admin endpoint.

Commands:
  status                      the node: version, uptime, raft state, readiness, counts
  health                      exit 0 if /healthz answers 200, else 1; no token (--ready: /readyz)
  members                     cluster members: gossip state, raft role, voter, addresses
  join ADDR                   join the cluster whose node gossips at ADDR (host:port)
  join --id ID --raft ADDR    add a node to raft directly (static clusters; --nonvoter)
  remove NODE                 take a node out of raft (--force for a live one)
  leader transfer             hand raft leadership to another voter
  snapshot                    take a raft snapshot now
  leave                       stop the node gracefully, as SIGTERM does, and wait until it is
                              gone (up to 60 s, or --timeout): a Kubernetes preStop hook
  clients                     connected clients (--filter PREFIX, --username U, --node N)
  kick ID                     close a client's connection (v5: DISCONNECT 0x98)
  sessions                    persistent sessions, connected or not (--filter PREFIX)
  session rm ID               end a session and discard its state
  subs                        subscriptions (--client ID, --filter FILTER)
  routes [TOPIC]              which nodes route TOPIC, or every route table
  retained                    retained messages (--filter FILTER, default #)
  retained rm TOPIC           delete a topic's retained message
  publish TOPIC PAYLOAD       publish as the broker (--qos N, --retain)
  stats                       the node's and the cluster's counters

Flags (anywhere on the line):
`

// ctlFlags are every flag of every ctl command.
type ctlFlags struct {
	admin, token           string
	json                   bool
	filter, username, node string
	client                 string
	id, raft               string
	nonvoter, force        bool
	ready                  bool
	qos                    int
	retain                 bool
	page, limit            int
	timeout                time.Duration
	leaveWait              time.Duration
}

// runCtl runs `flockmq ctl args` and returns the exit status: 0, 1 when the
// node refused or could not be reached, 2 for a usage error.
func runCtl(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var f ctlFlags
	fs := flag.NewFlagSet("flockmq ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := env("FLOCKMQ_ADMIN")
	if admin == "" {
		admin = "127.0.0.1:8080"
	}
	fs.StringVar(&f.admin, "admin", admin, "admin endpoint, host:port or URL (FLOCKMQ_ADMIN)")
	fs.StringVar(&f.token, "token", env("FLOCKMQ_ADMIN_TOKEN"), "admin bearer token (FLOCKMQ_ADMIN_TOKEN)")
	tokenFile := fs.String("token-file", env("FLOCKMQ_ADMIN_TOKEN_FILE"), "file holding the admin token, instead of -token (FLOCKMQ_ADMIN_TOKEN_FILE)")
	fs.BoolVar(&f.json, "json", false, "print the API's JSON instead of a table")
	fs.StringVar(&f.filter, "filter", "", "clients, sessions: client id prefix; subs: exact filter; retained: topic filter")
	fs.StringVar(&f.username, "username", "", "clients: only this user name")
	fs.StringVar(&f.node, "node", "", "clients, sessions, subs: only this node")
	fs.StringVar(&f.client, "client", "", "subs: only this client id")
	fs.StringVar(&f.id, "id", "", "join: the node's id (raft join)")
	fs.StringVar(&f.raft, "raft", "", "join: the node's raft address (raft join)")
	fs.BoolVar(&f.nonvoter, "nonvoter", false, "join: add as a non-voter")
	fs.BoolVar(&f.force, "force", false, "remove: even a live node")
	fs.BoolVar(&f.ready, "ready", false, "health: ask /readyz (ready for clients) instead of /healthz")
	fs.IntVar(&f.qos, "qos", 0, "publish: QoS 0, 1 or 2")
	fs.BoolVar(&f.retain, "retain", false, "publish: retain the message")
	fs.IntVar(&f.page, "page", 1, "lists: page, from 1")
	fs.IntVar(&f.limit, "limit", 100, "lists: items per page (at most 10000)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Second, "time allowed for the request")
	fs.Usage = func() {
		fmt.Fprint(stderr, ctlUsage)
		fs.PrintDefaults()
	}
	// Flags may come before, between or after the words.
	var words []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(words) == 0 {
		fs.Usage()
		return 2
	}
	if f.token == "" && *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "flockmq ctl: admin token file: %v\n", err)
			return 2
		}
		f.token = strings.TrimSpace(string(b))
	}
	if (words[0] == "health" || words[0] == "leave") && env("FLOCKMQ_ADMIN") == "" && !flagSet(fs, "admin") {
		// The image's HEALTHCHECK and a preStop hook run in the node's
		// environment: follow the node's own admin-listen there.
		if a := healthAddr(env("FLOCKMQ_ADMIN_LISTEN")); a != "" {
			f.admin = a
		}
	}
	f.leaveWait = 60 * time.Second
	if flagSet(fs, "timeout") {
		f.leaveWait = f.timeout
	}
	c, err := newCtlClient(f.admin, f.token, f.timeout)
	if err != nil {
		fmt.Fprintf(stderr, "flockmq ctl: %v\n", err)
		return 2
	}
	c.out, c.json = stdout, f.json
	if err := c.run(words, &f); err != nil {
		fmt.Fprintf(stderr, "flockmq ctl: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// healthAddr is where `ctl health` finds a node that listens on admin-listen
// listen: that address, on loopback when it is every interface; "" when
// listen is not host:port.
func healthAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

type usageError string

func (e usageError) Error() string { return string(e) }

type ctlClient struct {
	base  *url.URL
	token string
	http  *http.Client
	out   io.Writer
	json  bool
}

func newCtlClient(admin, token string, timeout time.Duration) (*ctlClient, error) {
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	u, err := url.Parse(admin)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("admin address %q is not host:port or a URL", admin)
	}
	return &ctlClient{base: u, token: token, http: &http.Client{Timeout: timeout}}, nil
}

// apiError is the node's answer to a failed request.
type apiError struct {
	Status int
	Msg    string
	Leader string
}

func (e *apiError) Error() string {
	if e.Leader != "" {
		return fmt.Sprintf("%s (HTTP %d; the leader's admin endpoint is %s)", e.Msg, e.Status, e.Leader)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
}

// call makes one request and decodes the JSON answer into out (when not
// nil), returning the raw body too.
func (c *ctlClient) call(method, path string, q url.Values, body any, out any) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	if strings.Contains(path, "%") {
		u.RawPath = strings.TrimSuffix(c.base.EscapedPath(), "/") + path
		if p, err := url.PathUnescape(u.RawPath); err == nil {
			u.Path = p
		}
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin endpoint at %s: %v", c.base.Host, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %v", c.base.Host, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error  string `json:"error"`
			Leader string `json:"leader"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return nil, &apiError{Status: resp.StatusCode, Msg: e.Error, Leader: e.Leader}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("the answer of %s is not the expected JSON: %v", c.base.Host, err)
		}
	}
	return raw, nil
}

// onLeader makes a leader-only request, following a 409 to the leader once.
func (c *ctlClient) onLeader(method, path string, q url.Values, body any, out any) ([]byte, error) {
	raw, err := c.call(method, path, q, body, out)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Leader != "" && ae.Leader != c.base.Host {
		lc := *c
		u := *c.base
		u.Host = ae.Leader
		lc.base = &u
		return lc.call(method, path, q, body, out)
	}
	return raw, err
}

func (c *ctlClient) run(words []string, f *ctlFlags) error {
	cmd, args := words[0], words[1:]
	want := func(n int, usage string) error {
		if len(args) != n {
			return usageError("usage: flockmq ctl " + usage)
		}
		return nil
	}
	lq := func() url.Values {
		q := url.Values{}
		q.Set("page", strconv.Itoa(f.page))
		q.Set("limit", strconv.Itoa(f.limit))
		if f.node != "" {
			q.Set("node", f.node)
		}
		return q
	}
	switch cmd {
	case "health":
		if err := want(0, "health [--ready]"); err != nil {
			return err
		}
		return c.health(f.ready)
	case "status":
		if err := want(0, "status"); err != nil {
			return err
		}
		var n map[string]any
		raw, err := c.call("GET", "/api/v1/node", nil, nil, &n)
		if err != nil {
			return err
		}
		return c.print(raw, func(w *tabwriter.Writer) {
			for _, k := range []string{"id", "version", "uptime_seconds", "store", "clustered", "ready", "reasons",
				"raft_state", "leader", "term", "commit_index", "applied_index", "members", "connections", "clients",
				"sessions", "subscriptions", "retained"} {
				if v, ok := n[k]; ok {
					fmt.Fprintf(w, "%s\t%s\n", strings.ReplaceAll(k, "_", " "), cell(v))
				}
			}
		})
	case "members":
		if err := want(0, "members"); err != nil {
			return err
		}
		return c.table("/api/v1/cluster/members", nil, []string{"id", "gossip_state", "raft_role", "voter",
			"raft_address", "admin_address", "version", "uptime_seconds", "clients"}, false)
	case "join":
		body := map[string]any{}
		switch {
		case f.id != "" || f.raft != "":
			if err := want(0, "join --id ID --raft HOST:PORT [--nonvoter]"); err != nil {
				return err
			}
			if f.id == "" || f.raft == "" {
				return usageError("a raft join needs both --id and --raft")
			}
			body["id"], body["raft_address"], body["voter"] = f.id, f.raft, !f.nonvoter
			raw, err := c.onLeader("POST", "/api/v1/cluster/join", nil, body, nil)
			return c.done(raw, err, fmt.Sprintf("added %s at %s to raft", f.id, f.raft))
		default:
			if err := want(1, "join ADDR (a member's gossip address host:port)"); err != nil {
				return err
			}
			body["address"] = args[0]
			raw, err := c.call("POST", "/api/v1/cluster/join", nil, body, nil)
			return c.done(raw, err, "joined the cluster through "+args[0])
		}
	case "remove":
		if err := want(1, "remove NODE [--force]"); err != nil {
			return err
		}
		q := url.Values{}
		if f.force {
			q.Set("force", "true")
		}
		raw, err := c.onLeader("DELETE", "/api/v1/cluster/members/"+url.PathEscape(args[0]), q, nil, nil)
		return c.done(raw, err, "removed "+args[0]+" from raft")
	case "leader":
		if len(args) != 1 || args[0] != "transfer" {
			return usageError("usage: flockmq ctl leader transfer")
		}
		var r struct {
			From, Leader string
		}
		raw, err := c.onLeader("POST", "/api/v1/cluster/leader/transfer", nil, nil, &r)
		return c.done(raw, err, fmt.Sprintf("leadership moved from %s to %s", r.From, r.Leader))
	case "snapshot":
		if err := want(0, "snapshot"); err != nil {
			return err
		}
		var r struct {
			Node  string
			Index uint64
		}
		raw, err := c.call("POST", "/api/v1/cluster/snapshot", nil, nil, &r)
		return c.done(raw, err, fmt.Sprintf("snapshot of %s taken at index %d", r.Node, r.Index))
	case "leave":
		if err := want(0, "leave"); err != nil {
			return err
		}
		var r struct{ Node string }
		raw, err := c.call("POST", "/api/v1/node/leave", nil, nil, &r)
		if err != nil {
			return err
		}
		if err := c.waitGone(f.leaveWait); err != nil {
			return fmt.Errorf("node %s: %w", r.Node, err)
		}
		return c.done(raw, nil, fmt.Sprintf("node %s left the cluster and stopped", r.Node))
	case "clients":
		if err := want(0, "clients [--filter PREFIX] [--username U] [--node N]"); err != nil {
			return err
		}
		q := lq()
		if f.filter != "" {
			q.Set("prefix", f.filter)
		}
		if f.username != "" {
			q.Set("username", f.username)
		}
		return c.table("/api/v1/clients", q, []string{"client_id", "node", "username", "remote_address",
			"protocol_version", "keep_alive", "session_expiry", "subscriptions", "inflight", "queued", "connected_at"}, true)
	case "kick":
		if err := want(1, "kick CLIENT_ID"); err != nil {
			return err
		}
		raw, err := c.call("DELETE", "/api/v1/clients/"+url.PathEscape(args[0]), nil, nil, nil)
		return c.done(raw, err, "kicked "+args[0])
	case "sessions":
		if err := want(0, "sessions [--filter PREFIX]"); err != nil {
			return err
		}
		q := lq()
		if f.filter != "" {
			q.Set("prefix", f.filter)
		}
		return c.table("/api/v1/sessions", q, []string{"client_id", "node", "connected", "session_expiry",
			"subscriptions", "inflight", "queued", "disconnected_at"}, true)
	case "session":
		if len(args) != 2 || args[0] != "rm" {
			return usageError("usage: flockmq ctl session rm CLIENT_ID")
		}
		raw, err := c.call("DELETE", "/api/v1/sessions/"+url.PathEscape(args[1]), nil, nil, nil)
		return c.done(raw, err, "session "+args[1]+" ended")
	case "subs":
		if err := want(0, "subs [--client ID] [--filter FILTER]"); err != nil {
			return err
		}
		q := lq()
		if f.client != "" {
			q.Set("client", f.client)
		}
		if f.filter != "" {
			q.Set("filter", f.filter)
		}
		return c.table("/api/v1/subscriptions", q, []string{"client_id", "node", "filter", "qos", "no_local",
			"retain_as_published", "retain_handling", "subscription_id"}, true)
	case "routes":
		if len(args) > 1 {
			return usageError("usage: flockmq ctl routes [TOPIC]")
		}
		if len(args) == 1 {
			q := url.Values{"topic": {args[0]}}
			var r struct {
				Topic string
				Nodes []string
			}
			raw, err := c.call("GET", "/api/v1/routes", q, nil, &r)
			if err != nil {
				return err
			}
			return c.print(raw, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "%s\t%s\n", r.Topic, strings.Join(r.Nodes, ","))
			})
		}
		return c.table("/api/v1/routes", lq(), []string{"node", "filter"}, true)
	case "retained":
		switch {
		case len(args) == 0:
			q := lq()
			if f.filter != "" {
				q.Set("filter", f.filter)
			}
			return c.table("/api/v1/retained", q, []string{"topic", "qos", "payload_encoding", "payload"}, true)
		case len(args) == 2 && args[0] == "rm":
			raw, err := c.call("DELETE", "/api/v1/retained/"+url.PathEscape(args[1]), nil, nil, nil)
			return c.done(raw, err, "retained message on "+args[1]+" deleted")
		}
		return usageError("usage: flockmq ctl retained [--filter FILTER] | retained rm TOPIC")
	case "publish":
		if err := want(2, "publish TOPIC PAYLOAD [--qos N] [--retain]"); err != nil {
			return err
		}
		if f.qos < 0 || f.qos > 2 {
			return usageError(fmt.Sprintf("--qos %d must be 0, 1 or 2", f.qos))
		}
		body := map[string]any{"topic": args[0], "payload": args[1], "qos": f.qos, "retain": f.retain}
		raw, err := c.call("POST", "/api/v1/publish", nil, body, nil)
		return c.done(raw, err, "published to "+args[0])
	case "stats":
		if err := want(0, "stats"); err != nil {
			return err
		}
		var r struct {
			Node    string         `json:"node"`
			Stats   map[string]any `json:"stats"`
			Cluster map[string]any `json:"cluster"`
		}
		raw, err := c.call("GET", "/api/v1/stats", nil, nil, &r)
		if err != nil {
			return err
		}
		return c.print(raw, func(w *tabwriter.Writer) {
			for _, k := range sortedKeys(r.Stats) {
				fmt.Fprintf(w, "node\t%s\t%s\n", k, cell(r.Stats[k]))
			}
			for _, k := range sortedKeys(r.Cluster) {
				fmt.Fprintf(w, "cluster\t%s\t%s\n", k, cell(r.Cluster[k]))
			}
		})
	}
	return usageError(fmt.Sprintf("unknown command %q; flockmq ctl -h lists them", cmd))
}

// health asks /healthz, or /readyz when ready, and returns nil only for a
// 200. It is the image's HEALTHCHECK (which has no shell or curl): it sends
// no token, which the probes do not need, and prints one sentence.
// waitGone polls the node's /healthz until its admin endpoint no longer
// answers (the process has exited), for up to d.
func (c *ctlClient) waitGone(d time.Duration) error {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/healthz"
	u.RawPath, u.RawQuery = "", ""
	deadline := time.Now().Add(d)
	for {
		resp, err := c.http.Get(u.String())
		if err != nil {
			return nil
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("still answering %v after the leave request", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *ctlClient) health(ready bool) error {
	path, want := "/healthz", "healthy"
	if ready {
		path, want = "/readyz", "ready"
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath, u.RawQuery = "", ""
	resp, err := c.http.Get(u.String())
	if err != nil {
		return fmt.Errorf("the node at %s is not %s: cannot reach its admin endpoint: %v", c.base.Host, want, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("the node at %s is not %s: reading its answer: %v", c.base.Host, want, err)
	}
	var body struct {
		Node    string   `json:"node"`
		Reasons []string `json:"reasons"`
		Error   string   `json:"error"`
	}
	_ = json.Unmarshal(raw, &body) // a proxy's page is not JSON: then the status speaks
	who := "the node at " + c.base.Host
	if body.Node != "" {
		who = "node " + body.Node + " at " + c.base.Host
	}
	if resp.StatusCode != http.StatusOK {
		why := strings.Join(body.Reasons, "; ")
		if why == "" {
			why = body.Error
		}
		if why == "" {
			why = "it answered " + path + " with " + resp.Status
		}
		return fmt.Errorf("%s is not %s: %s (HTTP %d)", who, want, why, resp.StatusCode)
	}
	if c.json {
		_, err := c.out.Write(raw)
		return err
	}
	_, err = fmt.Fprintf(c.out, "%s is %s\n", who, want)
	return err
}

// done prints the outcome of an action: the JSON, or msg.
func (c *ctlClient) done(raw []byte, err error, msg string) error {
	if err != nil {
		return err
	}
	if c.json {
		_, err := c.out.Write(raw)
		return err
	}
	_, err = fmt.Fprintln(c.out, msg)
	return err
}

// print writes raw JSON with --json, else the table fill makes.
func (c *ctlClient) print(raw []byte, fill func(w *tabwriter.Writer)) error {
	if c.json {
		_, err := c.out.Write(raw)
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fill(w)
	return w.Flush()
}

// table prints a list answer ({data: [...], meta}) with the given columns.
func (c *ctlClient) table(path string, q url.Values, cols []string, paged bool) error {
	var l struct {
		Data        []map[string]any `json:"data"`
		Meta        *struct{ Page, Limit, Count int }
		Unreachable []string `json:"unreachable"`
	}
	raw, err := c.call("GET", path, q, nil, &l)
	if err != nil {
		return err
	}
	return c.print(raw, func(w *tabwriter.Writer) {
		head := make([]string, len(cols))
		for i, col := range cols {
			head[i] = strings.ToUpper(strings.ReplaceAll(col, "_", " "))
		}
		fmt.Fprintln(w, strings.Join(head, "\t"))
		for _, row := range l.Data {
			cells := make([]string, len(cols))
			for i, col := range cols {
				cells[i] = cell(row[col])
			}
			fmt.Fprintln(w, strings.Join(cells, "\t"))
		}
		if paged && l.Meta != nil && l.Meta.Count > len(l.Data) {
			fmt.Fprintf(w, "(page %d: %d of %d; --page and --limit for more)\n", l.Meta.Page, len(l.Data), l.Meta.Count)
		}
		if len(l.Unreachable) > 0 {
			fmt.Fprintf(w, "(not answered by: %s)\n", strings.Join(l.Unreachable, ", "))
		}
	})
}

// cell renders one JSON value for a table.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'f', 1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e)
		}
		return strings.Join(parts, "; ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

func sortStrings(s []string) { slices.Sort(s) }
