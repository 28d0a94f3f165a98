package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flockmq/flockmq/broker"
)

// newTestServer is an endpoint over a broker with the memory store and no
// loops: enough for what does not need a connection.
func newTestServer(t *testing.T, token string) *Server {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.SysInterval = 0
	b, err := broker.New(cfg, broker.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(0) })
	s, err := New(Config{Token: token, Logger: slog.New(slog.DiscardHandler)}, Node{Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do serves one request from remote and returns the status and the decoded
// JSON body.
func do(t *testing.T, s *Server, method, target, remote, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var out map[string]any
	if ct := rec.Header().Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, target, err, rec.Body.String())
		}
	}
	return rec.Code, out
}

const local, remote = "127.0.0.1:5555", "192.0.2.7:5555"

func TestAuth(t *testing.T) {
	open := newTestServer(t, "")
	if code, _ := do(t, open, "GET", "/api/v1/node", local, "", ""); code != http.StatusOK {
		t.Errorf("no token, loopback: %d, want 200", code)
	}
	code, body := do(t, open, "GET", "/api/v1/node", remote, "", "")
	if code != http.StatusForbidden || !strings.Contains(body["error"].(string), "loopback") {
		t.Errorf("no token, remote: %d %v, want 403 naming loopback", code, body)
	}
	if code, _ := do(t, open, "GET", "/metrics", remote, "", ""); code != http.StatusForbidden {
		t.Errorf("no token, remote /metrics: %d, want 403", code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := do(t, open, "GET", path, remote, "", ""); code != http.StatusOK {
			t.Errorf("%s from a remote client: %d, want 200 (no token needed)", path, code)
		}
	}

	closed := newTestServer(t, "s3cret")
	for _, tc := range []struct {
		remote, token string
		want          int
	}{
		{local, "", http.StatusUnauthorized},
		{local, "wrong", http.StatusUnauthorized},
		{remote, "s3cret", http.StatusOK},
		{local, "s3cret", http.StatusOK},
	} {
		code, body := do(t, closed, "GET", "/api/v1/stats", tc.remote, tc.token, "")
		if code != tc.want {
			t.Errorf("token %q from %s: %d, want %d", tc.token, tc.remote, code, tc.want)
		}
		if code == http.StatusUnauthorized && body["error"] == nil {
			t.Errorf("401 without a JSON error: %v", body)
		}
	}
	if code, _ := do(t, closed, "GET", "/healthz", remote, "", ""); code != http.StatusOK {
		t.Errorf("healthz with a token configured: %d, want 200 without one", code)
	}
}

// TestBadInput sends what an operator or a script gets wrong: each gets a
// 4xx with a message naming the problem, and the endpoint keeps serving.
func TestBadInput(t *testing.T) {
	s := newTestServer(t, "")
	for _, tc := range []struct {
		method, target, body string
		want                 int
		mention              string
	}{
		{"POST", "/api/v1/publish", `{"topic":"a/+","payload":"x"}`, 400, "topic"},
		{"POST", "/api/v1/publish", `{"topic":"","payload":"x"}`, 400, "topic"},
		{"POST", "/api/v1/publish", `{"topic":"a","qos":3}`, 400, "qos"},
		{"POST", "/api/v1/publish", `{"topic":"a","payload":"!!","payload_encoding":"base64"}`, 400, "base64"},
		{"POST", "/api/v1/publish", `{"topic":"a","payload_encoding":"hex"}`, 400, "payload_encoding"},
		{"POST", "/api/v1/publish", `{"topic":"a","properties":{"payload_format_indicator":2}}`, 400, "payload_format_indicator"},
		{"POST", "/api/v1/publish", `{"topic":"a","properties":{"response_topic":"r/#"}}`, 400, "response_topic"},
		{"POST", "/api/v1/publish", `{"topic":"a","properties":{"user_properties":[{"key":"","value":"v"}]}}`, 400, "key"},
		{"POST", "/api/v1/publish", `{"topic":"a","bogus":1}`, 400, "bogus"},
		{"POST", "/api/v1/publish", `{"topic":`, 400, "JSON"},
		{"POST", "/api/v1/publish", ``, 400, "body"},
		{"GET", "/api/v1/clients?page=0", "", 400, "page"},
		{"GET", "/api/v1/clients?limit=x", "", 400, "limit"},
		{"GET", "/api/v1/clients?connected=maybe", "", 400, "connected"},
		{"GET", "/api/v1/retained?filter=a/%23/b", "", 400, "filter"},
		{"GET", "/api/v1/retained/a%2F%2B", "", 400, "topic"},
		{"GET", "/api/v1/routes?topic=a/%23", "", 400, "topic"},
		{"GET", "/api/v1/clients/nobody", "", 404, "nobody"},
		{"DELETE", "/api/v1/clients/nobody", "", 404, "nobody"},
		{"DELETE", "/api/v1/sessions/nobody", "", 404, "nobody"},
		{"GET", "/api/v1/retained/no/such", "", 404, "no/such"},
		{"GET", "/api/v1/cluster/leader", "", 404, "memory store"},
		{"POST", "/api/v1/cluster/join", `{"address":"x:1"}`, 404, "memory store"},
		{"GET", "/api/v1/nothing", "", 404, "no such"},
		{"PUT", "/api/v1/clients", "", 404, "no such"},
	} {
		code, body := do(t, s, tc.method, tc.target, local, "", tc.body)
		if code != tc.want {
			t.Errorf("%s %s %s: %d %v, want %d", tc.method, tc.target, tc.body, code, body, tc.want)
			continue
		}
		if tc.mention != "" {
			msg, _ := body["error"].(string)
			if !strings.Contains(msg, tc.mention) {
				t.Errorf("%s %s %s: error %q does not mention %q", tc.method, tc.target, tc.body, msg, tc.mention)
			}
		}
	}
	if code, _ := do(t, s, "GET", "/healthz", local, "", ""); code != http.StatusOK {
		t.Errorf("after bad input: healthz %d", code)
	}
}

// TestPublishAndRetainedWithoutLoops stores and reads a retained message
// through the API on the memory store.
func TestPublishAndRetainedWithoutLoops(t *testing.T) {
	s := newTestServer(t, "")
	code, body := do(t, s, "POST", "/api/v1/publish", local, "",
		`{"topic":"/lead/slash","payload":"AAEC","payload_encoding":"base64","qos":1,"retain":true,
		  "properties":{"content_type":"bin","user_properties":[{"key":"k","value":"v"}]}}`)
	if code != 200 {
		t.Fatalf("publish: %d %v", code, body)
	}
	code, body = do(t, s, "GET", "/api/v1/retained/%2Flead%2Fslash", local, "", "")
	if code != 200 || body["payload"] != "AAEC" || body["payload_encoding"] != "base64" || body["topic"] != "/lead/slash" {
		t.Fatalf("get retained: %d %v", code, body)
	}
	props, _ := body["properties"].(map[string]any)
	if props["content_type"] != "bin" {
		t.Errorf("properties %v lost the content type", props)
	}
	code, body = do(t, s, "GET", "/api/v1/retained?filter=%2F%23", local, "", "")
	if code != 200 || body["meta"].(map[string]any)["count"].(float64) != 1 {
		t.Fatalf("list retained: %d %v", code, body)
	}
	if code, body = do(t, s, "DELETE", "/api/v1/retained/%2Flead%2Fslash", local, "", ""); code != 200 {
		t.Fatalf("delete retained: %d %v", code, body)
	}
	if code, _ = do(t, s, "GET", "/api/v1/retained/%2Flead%2Fslash", local, "", ""); code != 404 {
		t.Fatalf("after delete: %d, want 404", code)
	}
}

// TestHandlerPanic: a handler that panics answers 500 with a JSON error,
// and the endpoint keeps answering.
func TestHandlerPanic(t *testing.T) {
	s := newTestServer(t, "")
	h := s.recovered(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/x", nil))
	var body map[string]string
	if rec.Code != 500 || json.Unmarshal(rec.Body.Bytes(), &body) != nil || !strings.Contains(body["error"], "internal error") {
		t.Fatalf("panic: %d %q", rec.Code, rec.Body.String())
	}
	if code, _ := do(t, s, "GET", "/healthz", local, "", ""); code != 200 {
		t.Fatalf("after a panic: healthz %d", code)
	}
}

// TestDashboardPaths: the page's odd paths answer sensibly.
func TestDashboardPaths(t *testing.T) {
	s := newTestServer(t, "")
	for path, want := range map[string]int{"/": 200, "/ui/": 301, "/ui/index.html": 301, "/ui/app.js": 200,
		"/ui/nothing.js": 404, "/ui/..%2fserver.go": 404} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
		if want == 200 && !strings.Contains(rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", path, rec.Header().Get("Content-Security-Policy"))
		}
	}
}

// TestLeave: POST /api/v1/node/leave calls the node's Stop once per request
// and answers 202; a node without Stop answers 501 with a message; GET is
// not the method.
func TestLeave(t *testing.T) {
	none := newTestServer(t, "")
	if code, body := do(t, none, "POST", "/api/v1/node/leave", local, "", ""); code != 501 || body["error"] == nil {
		t.Fatalf("leave without Stop: %d %v, want 501 with an error", code, body)
	}
	s := newTestServer(t, "tok")
	var stops int
	s.n.Stop = func() { stops++ }
	if code, _ := do(t, s, "POST", "/api/v1/node/leave", local, "", ""); code != 401 || stops != 0 {
		t.Fatalf("leave without the token: %d, %d stops; want 401 and none", code, stops)
	}
	if code, _ := do(t, s, "GET", "/api/v1/node/leave", local, "tok", ""); code == 202 || stops != 0 {
		t.Fatalf("GET leave: %d, %d stops; want a refusal and none", code, stops)
	}
	code, body := do(t, s, "POST", "/api/v1/node/leave", local, "tok", "")
	if code != 202 || body["leaving"] != true || stops != 1 {
		t.Fatalf("leave: %d %v, %d stops; want 202, leaving, one stop", code, body, stops)
	}
}
