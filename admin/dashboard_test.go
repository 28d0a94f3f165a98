package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/flockmq/flockmq/admin"
	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/eventloop"
)

// dashNode is a broker serving MQTT on a loopback port with its admin
// endpoint, as cmd/node wires them, stopped at cleanup.
type dashNode struct {
	b     *broker.Broker
	mqtt  string // MQTT address
	admin *admin.Server
}

func startDashNode(t *testing.T) *dashNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	b, err := broker.New(cfg, broker.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	srv := eventloop.NewServer(b, "127.0.0.1:0", eventloop.Options{Loops: 1, Logger: log})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Shutdown(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return &dashNode{b: b, mqtt: srv.Addr().String(), admin: startDashAdmin(t, b, "")}
}

// startDashAdmin serves an admin endpoint for b on a loopback port.
func startDashAdmin(t *testing.T, b *broker.Broker, token string) *admin.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	adm, err := admin.New(admin.Config{Listen: "127.0.0.1:0", Token: token, Logger: log}, admin.Node{Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = adm.Close() })
	return adm
}

// dashGetJSON GETs an admin URL and decodes its JSON answer.
func dashGetJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestDashboardServesPage: / is the page, which loads its script and style
// from /ui/ (the CSP allows no inline ones), and both are served.
func TestDashboardServesPage(t *testing.T) {
	n := startDashNode(t)
	base := "http://" + n.admin.Addr()

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET /: Content-Type %q, want text/html", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("GET /: Content-Security-Policy %q", csp)
	}
	html := string(page)
	for _, want := range []string{`src="/ui/app.js"`, `href="/ui/style.css"`, `id="node-id"`, `id="members"`,
		`id="clients"`, `id="rates-chart"`, `id="subscriptions"`, `id="retained"`} {
		if !strings.Contains(html, want) {
			t.Errorf("GET /: the page has no %s", want)
		}
	}
	// What the CSP would block: inline script and inline style.
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("GET /: inline script %s", tag)
		}
	}
	if m := regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=`).FindString(html); m != "" {
		t.Errorf("GET /: inline style or handler %q", m)
	}

	for path, ctype := range map[string]string{"/ui/app.js": "javascript", "/ui/style.css": "text/css"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %s, %d bytes", path, resp.Status, len(body))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, ctype)
		}
	}
}

// dashChromium finds Debian's chromium.
func dashChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium or chromium-browser on PATH: this test runs the dashboard in a real headless browser; " +
		".ci/run installs chromium (apt-get install chromium)")
	return ""
}

// dashBrowser runs headless chromium, one page load per run.
type dashBrowser struct {
	path string
	dir  string
	runs int
}

// run loads url with extra flags (--dump-dom, --screenshot=...) and returns
// chromium's stdout, and its stderr for the browser's console.
func (br *dashBrowser) run(url string, flags ...string) (stdout, stderr string, err error) {
	br.runs++
	profile := filepath.Join(br.dir, fmt.Sprintf("profile-%d", br.runs)) // a fresh one: no cached page or token
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + profile, "--virtual-time-budget=8000"}, flags...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, br.path, args...)
	cmd.Env = append(os.Environ(), "HOME="+br.dir, "XDG_CONFIG_HOME="+br.dir, "XDG_CACHE_HOME="+br.dir)
	cmd.WaitDelay = 5 * time.Second // chromium's helpers may hold the pipes after a kill
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("chromium timed out: %w", ctx.Err())
	}
	return out.String(), errb.String(), err
}

// dashElement returns the HTML of the element with id in dom, through its
// closing tag.
func dashElement(dom, id string) string {
	re := regexp.MustCompile(`<([a-z]+)[^>]*\sid="` + regexp.QuoteMeta(id) + `"[^>]*>`)
	loc := re.FindStringSubmatchIndex(dom)
	if loc == nil {
		return ""
	}
	tags := regexp.MustCompile(`</?` + dom[loc[2]:loc[3]] + `[\s>]`)
	depth := 0
	for _, m := range tags.FindAllStringIndex(dom[loc[0]:], -1) {
		if dom[loc[0]+m[0]+1] == '/' {
			depth--
		} else {
			depth++
		}
		if depth == 0 {
			return dom[loc[0] : loc[0]+m[1]]
		}
	}
	return dom[loc[0]:]
}

// dashText is the text of an HTML fragment.
func dashText(fragment string) string {
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(fragment, " ")), " ")
}

// dashConsoleProblems are the lines of chromium's log that report a CSP
// violation or a script error on the page.
func dashConsoleProblems(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "CONSOLE") && (strings.Contains(l, "Content Security Policy") ||
			strings.Contains(l, "Uncaught") || strings.Contains(l, "Error")) {
			out = append(out, l)
		}
	}
	return out
}

func dashTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestDashboardInBrowser loads the dashboard of a real node in headless
// chromium: the page's script, under the endpoint's CSP, fills the node,
// members, clients, subscriptions, retained and chart sections from the API.
func TestDashboardInBrowser(t *testing.T) {
	br := &dashBrowser{path: dashChromium(t), dir: t.TempDir()}
	n := startDashNode(t)
	base := "http://" + n.admin.Addr()

	// One real client, subscribed, with a retained message.
	conn, err := net.DialTimeout("tcp", n.mqtt, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnClientError: func(error) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "dash-client-1", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "dash/sensors/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "dash/retained/1", QoS: 1, Retain: true, Payload: []byte("hello dashboard")}); err != nil {
		t.Fatal(err)
	}
	var node struct{ ID string }
	dashGetJSON(t, base+"/api/v1/node", &node)
	if node.ID == "" {
		t.Fatal("GET /api/v1/node: no id")
	}

	// Load the page until the script has filled it in (it should on the
	// first load; retry against a slow start).
	checks := func(dom string) []string {
		var missing []string
		if got := dashText(dashElement(dom, "node-id")); got != node.ID {
			missing = append(missing, fmt.Sprintf("#node-id is %q, want %q", got, node.ID))
		}
		for id, want := range map[string]string{"clients": "dash-client-1", "members": node.ID,
			"subscriptions": "dash/sensors/#", "retained": "dash/retained/1"} {
			if !strings.Contains(dashText(dashElement(dom, id)), want) {
				missing = append(missing, fmt.Sprintf("#%s has no %q", id, want))
			}
		}
		if !strings.Contains(dashElement(dom, "rates-chart"), "<svg") {
			missing = append(missing, "#rates-chart has no chart")
		}
		return missing
	}
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	var dom string
	for {
		out, stderr, err := br.run(base+"/", "--dump-dom")
		if p := dashConsoleProblems(stderr); len(p) > 0 {
			t.Fatalf("the page logged errors:\n%s", strings.Join(p, "\n"))
		}
		dom = out
		missing := checks(dom)
		if err == nil && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the page is not filled in: %v (chromium: %v)\nDOM:\n%s\nstderr:\n%s",
				time.Since(start).Round(time.Millisecond), missing, err, dashTail(dom, 4000), dashTail(stderr, 2000))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("page filled in after %v (%d chromium runs)", time.Since(start).Round(time.Millisecond), br.runs)
	if row := dashElement(dom, "clients"); !strings.Contains(row, "Kick") {
		t.Errorf("#clients has no Kick button:\n%s", row)
	}

	// The charts have a line once the endpoint has a rate sample (every 5 s).
	var rates struct{ Data []json.RawMessage }
	for dashGetJSON(t, base+"/api/v1/rates", &rates); len(rates.Data) == 0; dashGetJSON(t, base+"/api/v1/rates", &rates) {
		if time.Now().After(deadline) {
			t.Fatal("the admin endpoint took no rate sample")
		}
		time.Sleep(200 * time.Millisecond)
	}

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	out, stderr, err := br.run(base+"/", "--dump-dom", "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars")
	if err != nil {
		t.Fatalf("screenshot: %v\n%s", err, dashTail(stderr, 2000))
	}
	if p := dashConsoleProblems(stderr); len(p) > 0 {
		t.Fatalf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
	if chart := dashElement(out, "rates-chart"); out == "" {
		t.Log("chromium dumped no DOM with the screenshot: the chart's lines are not checked")
	} else if !regexp.MustCompile(`<(polyline|circle)`).MatchString(chart) {
		t.Errorf("#rates-chart draws no sample:\n%s", dashTail(chart, 2000))
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v\n%s", shot, err, dashTail(stderr, 2000))
	}
	t.Logf("screenshot: %s", shot)

	// The page escapes a retained topic's slashes as %2F to delete it, as
	// the API asks.
	req, _ := http.NewRequest(http.MethodDelete, base+"/api/v1/retained/dash%2Fretained%2F1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("DELETE /api/v1/retained/dash%%2Fretained%%2F1: %s", resp.Status)
	}

	// With a token configured the page asks for it and shows no data.
	locked := startDashAdmin(t, n.b, "s3cret-token")
	out, stderr, err = br.run("http://"+locked.Addr()+"/", "--dump-dom")
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, dashTail(stderr, 2000))
	}
	form := regexp.MustCompile(`<form[^>]*id="token-form"[^>]*>`).FindString(out)
	if form == "" || strings.Contains(form, "hidden") {
		t.Errorf("with a token configured the token form is not shown: %q", form)
	}
	if strings.Contains(dashText(dashElement(out, "clients")), "dash-client-1") {
		t.Error("the page shows clients without the token")
	}
	_ = c.Disconnect(&paho.Disconnect{})
}
