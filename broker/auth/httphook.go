package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// HTTPHook asks an HTTP service whether a client may connect: a POST of
// {"clientid", "username", "password", "peerhost", "protocol", "transport"}
// as JSON, answered by 200 with {"result": "allow" | "deny" | "ignore"}
// (EMQX's convention). Another status is a deny for 4xx and the service
// being down for 5xx, as is a timeout or a refused connection: then Down
// decides. Answers are cached for CacheTTL, at most CacheSize of them,
// keyed by a hash of the credentials. Safe for concurrent use.
type HTTPHook struct {
	url    string
	client *http.Client
	// Down is the verdict while the service does not answer: Deny (the
	// default) or Ignore (the next source, then the anonymous policy).
	down Verdict
	ttl  time.Duration
	max  int

	mu    sync.Mutex
	cache map[[32]byte]cached
}

// Verdict is one source's answer in a chain.
type Verdict uint8

// The verdicts.
const (
	Ignore Verdict = iota // not this source's client: ask the next
	Allow
	Deny
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "ignore"
}

// ParseVerdict reads "allow", "deny" or "ignore".
func ParseVerdict(s string) (Verdict, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	case "ignore":
		return Ignore, nil
	}
	return Ignore, fmt.Errorf("%q is not allow, deny or ignore", s)
}

type cached struct {
	v  Verdict
	at time.Time
}

// HTTPHookConfig configures an HTTPHook.
type HTTPHookConfig struct {
	URL        string
	Timeout    time.Duration // per request (default 5 s)
	DownIgnore bool          // while the service fails: pass the client on (true) or deny it (false, the default)
	CacheTTL   time.Duration // 0 = 60 s; negative = no cache
	CacheSize  int           // 0 = 10,000
}

// NewHTTPHook returns a hook for cfg.
func NewHTTPHook(cfg HTTPHookConfig) (*HTTPHook, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("auth-http: no URL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10000
	}
	down := Deny
	if cfg.DownIgnore {
		down = Ignore
	}
	return &HTTPHook{url: cfg.URL, client: &http.Client{Timeout: cfg.Timeout}, down: down, ttl: cfg.CacheTTL,
		max: cfg.CacheSize, cache: map[[32]byte]cached{}}, nil
}

// HTTPRequest is the body the hook posts.
type HTTPRequest struct {
	ClientID  string `json:"clientid"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	PeerHost  string `json:"peerhost"`
	Protocol  int    `json:"protocol"`  // 3, 4 or 5
	Transport string `json:"transport"` // tcp, tls, ws, wss
}

// Check asks the service about req (or its cache) and returns the verdict
// and, for a failure, why. It blocks for at most the timeout: call it off
// the event loops.
func (h *HTTPHook) Check(ctx context.Context, req HTTPRequest) (Verdict, error) {
	key := sha256.Sum256([]byte(req.ClientID + "\x00" + req.Username + "\x00" + req.Password + "\x00" + req.PeerHost))
	if h.ttl > 0 {
		h.mu.Lock()
		c, ok := h.cache[key]
		h.mu.Unlock()
		if ok && time.Since(c.at) < h.ttl {
			return c.v, nil
		}
	}
	v, err := h.ask(ctx, req)
	if err != nil {
		return h.down, err // not cached: the next attempt asks again
	}
	if h.ttl > 0 {
		h.mu.Lock()
		if len(h.cache) >= h.max {
			for k := range h.cache { // evict one, any
				delete(h.cache, k)
				break
			}
		}
		h.cache[key] = cached{v: v, at: time.Now()}
		h.mu.Unlock()
	}
	return v, nil
}

func (h *HTTPHook) ask(ctx context.Context, req HTTPRequest) (Verdict, error) {
	body, _ := json.Marshal(req)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return h.down, err
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(r)
	if err != nil {
		return h.down, fmt.Errorf("auth-http: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 500:
		return h.down, fmt.Errorf("auth-http: %s answered %d", h.url, resp.StatusCode)
	case resp.StatusCode >= 400:
		return Deny, nil
	case resp.StatusCode == http.StatusNoContent:
		return Ignore, nil
	case resp.StatusCode != http.StatusOK:
		return h.down, fmt.Errorf("auth-http: %s answered %d", h.url, resp.StatusCode)
	}
	var out struct {
		Result string `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return h.down, fmt.Errorf("auth-http: %s answered 200 without a JSON result: %v", h.url, err)
	}
	v, err := ParseVerdict(out.Result)
	if err != nil {
		return h.down, fmt.Errorf("auth-http: %s: result %v", h.url, err)
	}
	return v, nil
}
