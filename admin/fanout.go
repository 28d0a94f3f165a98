package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/flockmq/flockmq/cluster"
	"github.com/flockmq/flockmq/fsm"
)

type fsmSession = fsm.Session

// Lists of what lives in a node's memory (clients, sessions' queues,
// subscriptions) are cluster-wide: the node asked fans the request out to
// the other live nodes' admin endpoints (gossiped in their meta) with the
// caller's credentials and ?local=true, and merges the answers. ?node=ID asks
// one node; ?local=true this node only.

func isLocal(r *http.Request) bool {
	v := r.URL.Query().Get("local")
	return v == "true" || v == "1"
}

// peerAdmins returns the live members other than this node with an admin
// endpoint, by id.
func (s *Server) peerAdmins() map[string]string {
	out := map[string]string{}
	cl := s.n.Cluster
	if cl == nil {
		return out
	}
	for _, m := range cl.Gossip().Members() {
		if m.Name != s.id && m.State == cluster.MemberAlive && m.Meta.AdminAddr != "" {
			out[m.Name] = m.Meta.AdminAddr
		}
	}
	return out
}

// gather runs local on this node and, unless the request is local-only,
// the same request on the other nodes, and returns the items with the nodes
// that did not answer. want > 0 asks each other node for its first want
// items only (in the list's order: enough for a page of the merged list),
// and uncounted is then the number of items the nodes hold beyond those;
// want 0 asks for everything (up to 10,000 per node).
func gather[T any](s *Server, r *http.Request, want int, local func() ([]T, error)) (items []T, unreachable []string, uncounted int, err error) {
	nodeFilter := r.URL.Query().Get("node")
	var all []T
	if nodeFilter == "" || nodeFilter == s.id || isLocal(r) {
		mine, err := local()
		if err != nil {
			return nil, nil, 0, err
		}
		all = mine
	}
	if isLocal(r) || nodeFilter == s.id {
		return all, nil, 0, nil
	}
	peers := s.peerAdmins()
	if nodeFilter != "" {
		addr, ok := peers[nodeFilter]
		if !ok {
			return nil, nil, 0, errorf(http.StatusNotFound, "node %q is not a live member with an admin endpoint", nodeFilter)
		}
		peers = map[string]string{nodeFilter: addr}
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	limit := 10000
	if want > 0 {
		limit = min(limit, want)
	}
	for id, addr := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l list[T]
			err := s.ask(r, addr, limit, &l)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Warn("admin: a node did not answer a cluster-wide list", "node", id, "admin", addr, "err", err)
				unreachable = append(unreachable, id)
				return
			}
			all = append(all, l.Data...)
			uncounted += max(0, l.Meta.Count-len(l.Data))
		}()
	}
	wg.Wait()
	return all, unreachable, uncounted, nil
}

// ask sends r's method and path to the node at addr as a local-only
// request for the first limit items, and decodes its JSON answer into v.
func (s *Server) ask(r *http.Request, addr string, limit int, v any) error {
	q := r.URL.Query()
	q.Set("local", "true")
	q.Del("page")
	q.Set("limit", strconv.Itoa(limit))
	q.Del("node")
	u := url.URL{Scheme: "http", Host: addr, Path: r.URL.Path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		return err
	}
	if h := r.Header.Get("Authorization"); h != "" {
		req.Header.Set("Authorization", h)
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(v)
}

// remoteOwner returns the admin address of the live node the registry says
// holds clientID's session, when that is another node; nil otherwise.
func (s *Server) remoteOwner(r *http.Request, clientID string) *string {
	if isLocal(r) || s.n.Raft == nil || s.n.Cluster == nil {
		return nil
	}
	fs, ok := s.n.Raft.FSM().Session(clientID)
	if !ok || fs.Node == s.id {
		return nil
	}
	if addr, ok := s.peerAdmins()[fs.Node]; ok {
		return &addr
	}
	return nil
}

// proxy answers r with the same request made, local-only, to the node at
// *addr.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, addr *string) error {
	status, ct, body, err := s.forward(r, *addr)
	if err != nil {
		return errorf(http.StatusBadGateway, "the node holding the session, at %s, did not answer: %v", *addr, err)
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// forward makes r, local-only, on the node at addr.
func (s *Server) forward(r *http.Request, addr string) (status int, contentType string, body []byte, err error) {
	q := r.URL.Query()
	q.Set("local", "true")
	u := url.URL{Scheme: "http", Host: addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		return 0, "", nil, err
	}
	if h := r.Header.Get("Authorization"); h != "" {
		req.Header.Set("Authorization", h)
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, err
}

// onAnyPeer makes r, local-only, on every other live node at once, for a
// client the registry does not list (a clean session's claim keeps no
// entry), and answers with the first success; it reports false when no node
// succeeded (the caller answers 404).
func (s *Server) onAnyPeer(w http.ResponseWriter, r *http.Request) bool {
	if isLocal(r) {
		return false
	}
	type answer struct {
		status int
		ct     string
		body   []byte
	}
	peers := s.peerAdmins()
	answers := make(chan answer, len(peers))
	for _, addr := range peers {
		go func() {
			status, ct, body, err := s.forward(r, addr)
			if err != nil {
				status = 0
			}
			answers <- answer{status, ct, body}
		}()
	}
	for range peers {
		a := <-answers
		if a.status/100 == 2 {
			w.Header().Set("Content-Type", a.ct)
			w.WriteHeader(a.status)
			_, _ = w.Write(a.body)
			return true
		}
	}
	return false
}

func splitHostPort(a string) (string, string, error) {
	h, p, err := net.SplitHostPort(a)
	if err == nil && p == "" {
		err = fmt.Errorf("no port")
	}
	return h, p, err
}
