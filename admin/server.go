package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cluster"
)

// Config is the endpoint's configuration.
type Config struct {
	// Listen is the host:port to serve on.
	Listen string
	// Token, when set, is the bearer token every request needs but
	// /healthz, /readyz and the dashboard's static files. With none, the
	// API answers only clients on a loopback address.
	Token string
	// Pprof serves Go's profiler under /debug/pprof/ (behind the token).
	Pprof bool
	// Advertise is this node's admin address as the others reach it (the
	// members list shows it); "" = the bound address.
	Advertise string
	// ReadyMaxLag is how many log entries this node's applied index may be
	// behind the commit index and still be ready (default 1000).
	ReadyMaxLag uint64
	Logger      *slog.Logger
}

// Node is what the endpoint serves: the broker, and with the raft store its
// node, and in a cluster the cluster. Node and Cluster may be nil.
type Node struct {
	Broker  *broker.Broker
	Raft    *cluster.Node
	Cluster *cluster.Cluster
	// Serving reports whether the MQTT listeners are up (nil: always).
	Serving func() bool
	// Stop starts the node's graceful stop, as SIGTERM does, and returns
	// at once (nil: the API cannot stop the node).
	Stop func()
}

// Server is the admin HTTP endpoint of one node.
type Server struct {
	cfg  Config
	n    Node
	log  *slog.Logger
	reg  *prometheus.Registry
	mux  *http.ServeMux
	srv  *http.Server
	ln   net.Listener
	id   string // node id
	fwd  *http.Client
	rate *rates

	apiRoutes []string // "METHOD /path" of every API route, for the docs test
}

// New builds the endpoint; Start serves it.
func New(cfg Config, n Node) (*Server, error) {
	if n.Broker == nil {
		return nil, errors.New("admin: no broker")
	}
	if cfg.ReadyMaxLag == 0 {
		cfg.ReadyMaxLag = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, n: n, log: cfg.Logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux(),
		id: "local", fwd: &http.Client{Timeout: 5 * time.Second}}
	if n.Raft != nil {
		s.id = n.Raft.ID()
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(s))
	s.rate = newRates(n.Broker)
	s.routes()
	return s, nil
}

// Handler is the endpoint's handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on Config.Listen and serves until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin listen on %s: %w", s.cfg.Listen, err)
	}
	s.Serve(ln)
	return nil
}

// Serve serves on ln, which the caller bound (to learn its port early),
// until Close.
func (s *Server) Serve(ln net.Listener) {
	s.ln = ln
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("admin endpoint stopped", "err", err)
		}
	}()
	go s.rate.run()
	s.log.Info("admin endpoint serving", "listen", ln.Addr().String(), "pprof", s.cfg.Pprof)
	if s.cfg.Token == "" {
		s.log.Warn("admin endpoint has no token: its API answers loopback clients only; set admin-token or admin-token-file")
	}
}

// Addr is the bound address, after Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops serving.
func (s *Server) Close() error {
	s.rate.stop()
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.auth(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}})))
	m.Handle("GET /{$}", http.HandlerFunc(s.dashboard))
	m.Handle("GET /ui/", http.HandlerFunc(s.dashboard))

	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		m.Handle(pattern, s.auth(s.recovered(apiHandler(h))))
		if strings.Contains(pattern, " ") {
			s.apiRoutes = append(s.apiRoutes, strings.ReplaceAll(pattern, "{topic...}", "{topic}"))
		}
	}
	api("GET /api/v1/node", s.getNode)
	api("GET /api/v1/cluster/members", s.getMembers)
	api("GET /api/v1/cluster/leader", s.getLeader)
	api("POST /api/v1/cluster/join", s.postJoin)
	api("DELETE /api/v1/cluster/members/{id}", s.deleteMember)
	api("POST /api/v1/cluster/leader/transfer", s.postTransfer)
	api("POST /api/v1/cluster/snapshot", s.postSnapshot)
	api("POST /api/v1/node/leave", s.postLeave)
	api("GET /api/v1/clients", s.getClients)
	api("GET /api/v1/clients/{id}", s.getClient)
	api("DELETE /api/v1/clients/{id}", s.deleteClient)
	api("GET /api/v1/sessions", s.getSessions)
	api("DELETE /api/v1/sessions/{id}", s.deleteSession)
	api("GET /api/v1/subscriptions", s.getSubscriptions)
	api("GET /api/v1/routes", s.getRoutes)
	api("GET /api/v1/retained", s.getRetainedList)
	api("GET /api/v1/retained/{topic...}", s.getRetained)
	api("DELETE /api/v1/retained/{topic...}", s.deleteRetained)
	api("POST /api/v1/publish", s.postPublish)
	api("GET /api/v1/stats", s.getStats)
	api("GET /api/v1/rates", s.getRates)
	api("/api/", func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "no such API path or method")
	})
	if s.cfg.Pprof {
		m.Handle("/debug/pprof/", s.auth(http.HandlerFunc(pprof.Index)))
		m.Handle("/debug/pprof/cmdline", s.auth(http.HandlerFunc(pprof.Cmdline)))
		m.Handle("/debug/pprof/profile", s.auth(http.HandlerFunc(pprof.Profile)))
		m.Handle("/debug/pprof/symbol", s.auth(http.HandlerFunc(pprof.Symbol)))
		m.Handle("/debug/pprof/trace", s.auth(http.HandlerFunc(pprof.Trace)))
	}
}

// auth checks the bearer token, or with none configured that the client is
// on a loopback address.
func (s *Server) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" {
			if !loopback(r.RemoteAddr) {
				writeError(w, errorf(http.StatusForbidden, "the admin API has no token configured and answers loopback clients only"))
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flockmq"`)
			writeError(w, errorf(http.StatusUnauthorized, "missing or wrong bearer token"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httpError is an error with its HTTP status; Leader is set on 409.
type httpError struct {
	Status int
	Msg    string
	Leader string // the leader's admin address (or raft address) for 409
}

func (e *httpError) Error() string { return e.Msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// recovered answers 500 when h panics and logs the panic; the endpoint and
// the node keep serving.
func (s *Server) recovered(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("admin handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v),
					"stack", string(debug.Stack()))
				writeError(w, errorf(http.StatusInternalServerError, "internal error (logged on node %s)", s.id))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// apiHandler turns a handler's error into a JSON error response.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

func (h apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		writeError(w, err)
	}
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	body := map[string]string{"error": he.Msg}
	if he.Leader != "" {
		body["leader"] = he.Leader
	}
	writeJSON(w, he.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// slogPrinter adapts the logger to promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }
