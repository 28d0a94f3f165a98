package admin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cluster"
	"github.com/flockmq/flockmq/codec"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// page is the paging of a list: ?page (from 1) and ?limit (1 to 10000,
// default 100).
type page struct{ Page, Limit int }

type listMeta struct {
	Page  int `json:"page"`
	Limit int `json:"limit"`
	Count int `json:"count"` // items matching, over every page
}

type list[T any] struct {
	Data []T      `json:"data"`
	Meta listMeta `json:"meta"`
	// Unreachable names the nodes a cluster-wide list could not ask.
	Unreachable []string `json:"unreachable,omitempty"`
}

func paging(r *http.Request) (page, error) {
	p := page{Page: 1, Limit: 100}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, errorf(http.StatusBadRequest, "page %q must be a whole number from 1", v)
		}
		p.Page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return p, errorf(http.StatusBadRequest, "limit %q must be a whole number from 1 to 10000", v)
		}
		p.Limit = n
	}
	return p, nil
}

// paged cuts one page out of all.
func paged[T any](all []T, p page) list[T] {
	start := min(len(all), (p.Page-1)*p.Limit)
	end := min(len(all), start+p.Limit)
	data := all[start:end]
	if data == nil {
		data = []T{}
	}
	return list[T]{Data: data, Meta: listMeta{Page: p.Page, Limit: p.Limit, Count: len(all)}}
}

func boolParam(r *http.Request, name string) (bool, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, false, errorf(http.StatusBadRequest, "%s %q must be true or false", name, v)
	}
	return b, true, nil
}

// decodeBody reads a JSON body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "the request needs a JSON body")
		}
		return errorf(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	return nil
}

// raftError maps an error of a raft operation to its status: 409 with the
// leader for a follower, 503 without a leader.
func (s *Server) raftError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrNotLeader):
		he := &httpError{Status: http.StatusConflict, Msg: err.Error()}
		he.Leader = s.leaderAdmin()
		return he
	case errors.Is(err, cluster.ErrUnavailable), errors.Is(err, cluster.ErrBacklog):
		return errorf(http.StatusServiceUnavailable, "%v", err)
	case errors.Is(err, cluster.ErrNodeAlive):
		return errorf(http.StatusConflict, "%v", err)
	}
	return err
}

// leaderAdmin is the leader's admin address when gossip knows it, else its
// raft address.
func (s *Server) leaderAdmin() string {
	if s.n.Raft == nil {
		return ""
	}
	st := s.n.Raft.Status()
	if cl := s.n.Cluster; cl != nil && st.LeaderID != "" {
		for _, m := range cl.Gossip().Members() {
			if m.Name == st.LeaderID && m.Meta.AdminAddr != "" {
				return m.Meta.AdminAddr
			}
		}
	}
	return st.LeaderAddr
}

func (s *Server) needRaft() error {
	if s.n.Raft == nil {
		return errorf(http.StatusNotFound, "this node runs the memory store: it has no raft cluster")
	}
	return nil
}

// --- health ---

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": s.id})
}

type readiness struct {
	Ready   bool              `json:"ready"`
	Node    string            `json:"node"`
	Reasons []string          `json:"reasons,omitempty"`
	Checks  map[string]string `json:"checks"`
}

// ready checks what a load balancer needs before it sends clients here.
func (s *Server) ready() readiness {
	rd := readiness{Node: s.id, Checks: map[string]string{}}
	fail := func(check, why string) {
		rd.Checks[check] = why
		rd.Reasons = append(rd.Reasons, why)
	}
	if s.n.Serving != nil && !s.n.Serving() {
		fail("listeners", "the MQTT listeners are not up")
	} else {
		rd.Checks["listeners"] = "ok"
	}
	if n := s.n.Raft; n != nil {
		st := n.Status()
		joined := false
		for _, sv := range st.Servers {
			if sv.ID == st.NodeID {
				joined = true
			}
		}
		if joined {
			rd.Checks["joined"] = "ok"
		} else {
			fail("joined", "this node is not in the raft configuration yet")
		}
		if st.LeaderID == "" {
			fail("leader", "raft has no leader")
		} else {
			rd.Checks["leader"] = "ok"
		}
		if lag := st.CommitIndex - min(st.AppliedIndex, st.CommitIndex); lag > s.cfg.ReadyMaxLag {
			fail("applied", "applied index "+strconv.FormatUint(st.AppliedIndex, 10)+" is "+
				strconv.FormatUint(lag, 10)+" entries behind the commit index")
		} else {
			rd.Checks["applied"] = "ok"
		}
	}
	rd.Ready = len(rd.Reasons) == 0
	return rd
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	rd := s.ready()
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

// --- node and cluster ---

type nodeInfo struct {
	ID            string   `json:"id"`
	Version       string   `json:"version"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	Store         string   `json:"store"`
	Clustered     bool     `json:"clustered"`
	Ready         bool     `json:"ready"`
	Reasons       []string `json:"reasons,omitempty"`
	RaftState     string   `json:"raft_state,omitempty"`
	Leader        string   `json:"leader,omitempty"`
	Term          uint64   `json:"term,omitempty"`
	CommitIndex   uint64   `json:"commit_index,omitempty"`
	AppliedIndex  uint64   `json:"applied_index,omitempty"`
	Connections   int64    `json:"connections"`
	Clients       int64    `json:"clients"`
	Sessions      int      `json:"sessions"`
	Subscriptions int      `json:"subscriptions"`
	Retained      int      `json:"retained"`
	Members       int      `json:"members,omitempty"`
}

func (s *Server) getNode(w http.ResponseWriter, _ *http.Request) error {
	b := s.n.Broker
	rd := s.ready()
	in := nodeInfo{ID: s.id, Version: broker.Version, UptimeSeconds: sinceSeconds(b.Started()), Store: "memory",
		Clustered: s.n.Cluster != nil, Ready: rd.Ready, Reasons: rd.Reasons,
		Connections: b.Stats().ConnectionsOpen.Load(), Clients: b.Stats().ClientsConnected.Load(),
		Sessions: b.SessionCount(), Subscriptions: b.SubscriptionCount(), Retained: b.RetainedCount()}
	if n := s.n.Raft; n != nil {
		st := n.Status()
		in.Store, in.RaftState, in.Leader, in.Term = "raft", strings.ToLower(st.State), st.LeaderID, st.Term
		in.CommitIndex, in.AppliedIndex = st.CommitIndex, st.AppliedIndex
		in.Members = len(st.Servers)
	}
	if cl := s.n.Cluster; cl != nil {
		in.Members = len(cl.Gossip().Members())
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

type member struct {
	ID            string    `json:"id"`
	Self          bool      `json:"self"`
	GossipState   string    `json:"gossip_state,omitempty"` // alive, suspect, dead, left; "" outside a cluster
	GossipAddr    string    `json:"gossip_address,omitempty"`
	StateSince    time.Time `json:"state_since,omitzero"`
	RaftRole      string    `json:"raft_role"` // leader, follower, nonvoter, none
	Voter         bool      `json:"voter"`
	RaftAddr      string    `json:"raft_address,omitempty"`
	PeerAddr      string    `json:"peer_address,omitempty"`
	AdminAddr     string    `json:"admin_address,omitempty"`
	Version       string    `json:"version,omitempty"`
	UptimeSeconds float64   `json:"uptime_seconds,omitempty"`
	Clients       uint64    `json:"clients"`
}

func (s *Server) members() []member {
	var out []member
	byID := map[string]int{}
	var st cluster.Status
	if s.n.Raft != nil {
		st = s.n.Raft.Status()
	}
	if cl := s.n.Cluster; cl != nil {
		for _, m := range cl.Gossip().Members() {
			byID[m.Name] = len(out)
			mm := member{ID: m.Name, Self: m.Name == s.id, GossipState: m.State.String(), GossipAddr: m.Addr,
				StateSince: m.Since, RaftRole: "none", RaftAddr: m.Meta.RaftAddr, PeerAddr: m.Meta.PeerAddr,
				AdminAddr: m.Meta.AdminAddr, Version: m.Meta.Version, Clients: m.Meta.Clients}
			if m.Meta.Boot != 0 && m.State == cluster.MemberAlive {
				mm.UptimeSeconds = time.Since(time.Unix(0, int64(m.Meta.Boot))).Seconds()
			}
			out = append(out, mm)
		}
	}
	for _, sv := range st.Servers {
		i, ok := byID[sv.ID]
		if !ok {
			i = len(out)
			byID[sv.ID] = i
			out = append(out, member{ID: sv.ID, Self: sv.ID == s.id})
		}
		m := &out[i]
		m.Voter, m.RaftAddr = sv.Voter, sv.Address
		switch {
		case sv.ID == st.LeaderID:
			m.RaftRole = "leader"
		case sv.Voter:
			m.RaftRole = "follower"
		default:
			m.RaftRole = "nonvoter"
		}
	}
	if len(out) == 0 { // the memory store: a node of its own
		out = append(out, member{ID: s.id, Self: true, RaftRole: "none"})
	}
	for i := range out {
		if out[i].Self {
			out[i].Version = broker.Version
			out[i].UptimeSeconds = sinceSeconds(s.n.Broker.Started())
			out[i].Clients = uint64(max(0, s.n.Broker.Stats().ClientsConnected.Load()))
			out[i].AdminAddr = s.Addr()
			if s.cfg.Advertise != "" {
				out[i].AdminAddr = s.cfg.Advertise
			}
		}
	}
	slices.SortFunc(out, func(a, b member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (s *Server) getMembers(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"data": s.members()})
	return nil
}

func (s *Server) getLeader(w http.ResponseWriter, _ *http.Request) error {
	if err := s.needRaft(); err != nil {
		return err
	}
	st := s.n.Raft.Status()
	if st.LeaderID == "" {
		return errorf(http.StatusServiceUnavailable, "raft has no leader")
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": st.LeaderID, "raft_address": st.LeaderAddr,
		"admin_address": s.leaderAdmin(), "term": st.Term, "self": st.LeaderID == s.id})
	return nil
}

type joinRequest struct {
	// Address is a gossip address (host:port) for this node to join: the
	// leader then adds the nodes it learns about to raft.
	Address string `json:"address"`
	// ID and RaftAddress add a node to raft directly (leader only), as a
	// voter unless Voter is false.
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	Voter       *bool  `json:"voter"`
}

func (s *Server) postJoin(w http.ResponseWriter, r *http.Request) error {
	if err := s.needRaft(); err != nil {
		return err
	}
	var req joinRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	switch {
	case req.Address != "" && (req.ID != "" || req.RaftAddress != ""):
		return errorf(http.StatusBadRequest, "address (a gossip join) cannot be combined with id and raft_address (a raft join)")
	case req.Address != "":
		cl := s.n.Cluster
		if cl == nil {
			return errorf(http.StatusBadRequest, "address: this node runs without gossip (no cluster-bind); give id and raft_address to add a node to raft")
		}
		if _, _, err := splitHostPort(req.Address); err != nil {
			return errorf(http.StatusBadRequest, "address %q: %v", req.Address, err)
		}
		n, err := cl.Gossip().Join([]string{req.Address})
		if err != nil {
			return errorf(http.StatusBadGateway, "join %s: %v", req.Address, err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"joined": req.Address, "contacted": n})
		return nil
	case req.ID == "":
		return errorf(http.StatusBadRequest, "id: a raft join needs the node's id (or give address for a gossip join)")
	case req.RaftAddress == "":
		return errorf(http.StatusBadRequest, "raft_address: a raft join needs the node's raft address host:port")
	}
	if _, _, err := splitHostPort(req.RaftAddress); err != nil {
		return errorf(http.StatusBadRequest, "raft_address %q: %v", req.RaftAddress, err)
	}
	voter := req.Voter == nil || *req.Voter
	if err := s.n.Raft.Join(req.ID, req.RaftAddress, voter); err != nil {
		return s.raftError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"added": req.ID, "raft_address": req.RaftAddress, "voter": voter})
	return nil
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) error {
	if err := s.needRaft(); err != nil {
		return err
	}
	id := r.PathValue("id")
	force, _, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	if id == s.id {
		return errorf(http.StatusConflict, "%s is this node: transfer leadership and remove it from another node, or stop it", id)
	}
	found := false
	for _, sv := range s.n.Raft.Status().Servers {
		found = found || sv.ID == id
	}
	if !found {
		return errorf(http.StatusNotFound, "node %q is not in the raft configuration", id)
	}
	if cl := s.n.Cluster; cl != nil {
		err = cl.Remove(id, force)
	} else {
		err = s.n.Raft.Remove(id)
	}
	if err != nil {
		return s.raftError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": id})
	return nil
}

func (s *Server) postTransfer(w http.ResponseWriter, _ *http.Request) error {
	if err := s.needRaft(); err != nil {
		return err
	}
	if err := s.n.Raft.TransferLeadership(); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			return s.raftError(err)
		}
		return errorf(http.StatusServiceUnavailable, "leadership transfer: %v", err)
	}
	// Wait for a new leader to be known, briefly.
	deadline := time.Now().Add(5 * time.Second)
	st := s.n.Raft.Status()
	for (st.LeaderID == "" || st.LeaderID == s.id) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		st = s.n.Raft.Status()
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": s.id, "leader": st.LeaderID, "term": st.Term})
	return nil
}

func (s *Server) postSnapshot(w http.ResponseWriter, _ *http.Request) error {
	if err := s.needRaft(); err != nil {
		return err
	}
	start := time.Now()
	if err := s.n.Raft.Snapshot(); err != nil {
		return errorf(http.StatusConflict, "snapshot: %v", err)
	}
	st := s.n.Raft.Status()
	writeJSON(w, http.StatusOK, map[string]any{"node": s.id, "index": st.AppliedIndex,
		"seconds": time.Since(start).Seconds()})
	return nil
}

// postLeave starts this node's graceful stop, the one SIGTERM starts: it
// leaves the cluster (a leader hands leadership on, the other nodes drop its
// routes), its clients get DISCONNECT 0x8B, and the process exits 0. The
// answer comes first; `flockmq ctl leave` then waits for the node to be
// gone. A Kubernetes preStop hook runs it.
func (s *Server) postLeave(w http.ResponseWriter, _ *http.Request) error {
	if s.n.Stop == nil {
		return errorf(http.StatusNotImplemented, "this node cannot be stopped through the admin API")
	}
	s.log.Info("leave requested through the admin API")
	s.n.Stop()
	writeJSON(w, http.StatusAccepted, map[string]any{"node": s.id, "leaving": true})
	return nil
}

// --- clients and sessions ---

type clientJSON struct {
	ClientID        string    `json:"client_id"`
	Node            string    `json:"node"`
	Connected       bool      `json:"connected"`
	Username        string    `json:"username,omitempty"`
	RemoteAddr      string    `json:"remote_address,omitempty"`
	ProtocolVersion byte      `json:"protocol_version,omitempty"`
	KeepAlive       uint16    `json:"keep_alive,omitempty"`
	SessionExpiry   uint32    `json:"session_expiry"`
	ConnectedAt     time.Time `json:"connected_at,omitzero"`
	DisconnectedAt  time.Time `json:"disconnected_at,omitzero"`
	Subscriptions   int       `json:"subscriptions"`
	Inflight        int       `json:"inflight"`
	Queued          int       `json:"queued"`
}

func (s *Server) clientOf(in broker.SessionInfo) clientJSON {
	return clientJSON{ClientID: in.ClientID, Node: s.id, Connected: in.Connected, Username: in.Username,
		RemoteAddr: in.RemoteAddr, ProtocolVersion: in.ProtocolVersion, KeepAlive: in.KeepAlive,
		SessionExpiry: in.Expiry, ConnectedAt: in.ConnectedAt, DisconnectedAt: in.DisconnectedAt,
		Subscriptions: in.Subscriptions, Inflight: in.Inflight, Queued: in.Queued}
}

// localSessions lists this node's sessions matching the request's filters:
// prefix, username, connected.
func (s *Server) localSessions(r *http.Request, onlyConnected bool) ([]clientJSON, error) {
	q := r.URL.Query()
	infos, err := s.n.Broker.Sessions(q.Get("prefix"))
	if err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "%v", err)
	}
	user, hasUser := q.Get("username"), q.Has("username")
	connected, hasConnected, err := boolParam(r, "connected")
	if err != nil {
		return nil, err
	}
	out := []clientJSON{}
	for _, in := range infos {
		if (onlyConnected && !in.Connected) || (hasUser && in.Username != user) ||
			(hasConnected && in.Connected != connected) {
			continue
		}
		out = append(out, s.clientOf(in))
	}
	return out, nil
}

func (s *Server) getClients(w http.ResponseWriter, r *http.Request) error {
	p, err := paging(r)
	if err != nil {
		return err
	}
	all, unreachable, uncounted, err := gather(s, r, p.Page*p.Limit, func() ([]clientJSON, error) { return s.localSessions(r, true) })
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b clientJSON) int { return strings.Compare(a.ClientID, b.ClientID) })
	l := paged(all, p)
	l.Meta.Count += uncounted
	l.Unreachable = unreachable
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) getClient(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	in, ok, err := s.n.Broker.Session(id)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "%v", err)
	}
	if ok {
		writeJSON(w, http.StatusOK, s.clientOf(in))
		return nil
	}
	if owner := s.remoteOwner(r, id); owner != nil {
		return s.proxy(w, r, owner)
	}
	if s.onAnyPeer(w, r) {
		return nil
	}
	return errorf(http.StatusNotFound, "no client %q", id)
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	kicked, err := s.n.Broker.Kick(id)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "%v", err)
	}
	if kicked {
		writeJSON(w, http.StatusOK, map[string]any{"kicked": id, "node": s.id})
		return nil
	}
	if owner := s.remoteOwner(r, id); owner != nil {
		return s.proxy(w, r, owner)
	}
	if s.onAnyPeer(w, r) {
		return nil
	}
	return errorf(http.StatusNotFound, "client %q is not connected", id)
}

// sessionJSON is a session of the registry (or of this node's memory).
type sessionJSON struct {
	clientJSON
	OwnerDown bool `json:"owner_down,omitempty"`
}

func (s *Server) getSessions(w http.ResponseWriter, r *http.Request) error {
	p, err := paging(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	connected, hasConnected, err := boolParam(r, "connected")
	if err != nil {
		return err
	}
	// What the nodes hold in memory, persistent sessions only.
	mem, unreachable, _, err := gather(s, r, 0, func() ([]clientJSON, error) {
		all, err := s.localSessions(r, false)
		out := all[:0]
		for _, c := range all {
			if c.SessionExpiry > 0 {
				out = append(out, c)
			}
		}
		return out, err
	})
	if err != nil {
		return err
	}
	byID := map[string]clientJSON{}
	for _, c := range mem {
		byID[c.ClientID] = c
	}
	var all []sessionJSON
	if n := s.n.Raft; n != nil && !isLocal(r) {
		// The registry is authoritative cluster-wide; the nodes' memory adds
		// queue lengths and connection details.
		n.FSM().SessionsWithPrefix(q.Get("prefix"), func(fs fsmSession) bool {
			if fs.Expiry == 0 {
				return true
			}
			sj := sessionJSON{clientJSON: clientJSON{ClientID: fs.ClientID, Node: fs.Node, Connected: fs.Connected,
				ProtocolVersion: fs.ProtocolVersion, SessionExpiry: fs.Expiry, Subscriptions: len(fs.Subscriptions)},
				OwnerDown: fs.OwnerDown}
			if fs.ConnectedAt != 0 {
				sj.ConnectedAt = time.UnixMilli(fs.ConnectedAt)
			}
			if !fs.Connected && fs.DisconnectedAt != 0 {
				sj.DisconnectedAt = time.UnixMilli(fs.DisconnectedAt)
			}
			if c, ok := byID[fs.ClientID]; ok {
				sj.Username, sj.RemoteAddr, sj.KeepAlive = c.Username, c.RemoteAddr, c.KeepAlive
				sj.Inflight, sj.Queued, sj.Subscriptions = c.Inflight, c.Queued, c.Subscriptions
			}
			if q.Has("username") && sj.Username != q.Get("username") {
				return true
			}
			if hasConnected && sj.Connected != connected {
				return true
			}
			all = append(all, sj)
			return true
		})
	} else {
		for _, c := range mem {
			all = append(all, sessionJSON{clientJSON: c})
		}
	}
	slices.SortFunc(all, func(a, b sessionJSON) int { return strings.Compare(a.ClientID, b.ClientID) })
	l := paged(all, p)
	l.Unreachable = unreachable
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var before fsmSession
	var inRegistry bool
	if n := s.n.Raft; n != nil {
		before, inRegistry = n.FSM().Session(id)
	}
	found, err := s.n.Broker.DiscardSession(id)
	if err != nil {
		return errorf(http.StatusServiceUnavailable, "%v", err)
	}
	if found {
		if inRegistry && before.Node == s.id {
			// The broker releases the entry through the log; answer once it
			// is gone, so that a list right after does not show it.
			deadline := time.Now().Add(5 * time.Second)
			for {
				cur, ok := s.n.Raft.FSM().Session(id)
				if !ok || cur.Epoch != before.Epoch {
					break
				}
				if time.Now().After(deadline) {
					return errorf(http.StatusServiceUnavailable, "session %q ended here, but the registry has not released it yet", id)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"deleted": id, "node": s.id})
		return nil
	}
	if owner := s.remoteOwner(r, id); owner != nil {
		return s.proxy(w, r, owner)
	}
	// Held by no live node: end its registry entry.
	if n := s.n.Raft; n != nil && !isLocal(r) {
		if fs, ok := n.FSM().Session(id); ok {
			if err := n.Store().Release(id, fs.Epoch); err != nil {
				return s.raftError(err)
			}
			writeJSON(w, http.StatusOK, map[string]any{"deleted": id, "node": fs.Node})
			return nil
		}
	}
	return errorf(http.StatusNotFound, "no session %q", id)
}

// --- subscriptions and routes ---

type subscriptionJSON struct {
	ClientID          string `json:"client_id"`
	Node              string `json:"node"`
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	RetainHandling    byte   `json:"retain_handling,omitempty"`
	SubscriptionID    uint32 `json:"subscription_id,omitempty"`
}

func (s *Server) getSubscriptions(w http.ResponseWriter, r *http.Request) error {
	p, err := paging(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	client, filter := q.Get("client"), q.Get("filter")
	all, unreachable, uncounted, err := gather(s, r, p.Page*p.Limit, func() ([]subscriptionJSON, error) {
		subs, err := s.n.Broker.SubscriptionsOf(client, client != "")
		if err != nil {
			return nil, errorf(http.StatusServiceUnavailable, "%v", err)
		}
		out := []subscriptionJSON{}
		for _, sub := range subs {
			if filter != "" && sub.Filter != filter {
				continue
			}
			out = append(out, subscriptionJSON{ClientID: sub.ClientID, Node: s.id, Filter: sub.Filter, QoS: sub.QoS,
				NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling,
				SubscriptionID: sub.SubscriptionID})
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b subscriptionJSON) int {
		if c := strings.Compare(a.ClientID, b.ClientID); c != 0 {
			return c
		}
		return strings.Compare(a.Filter, b.Filter)
	})
	l := paged(all, p)
	l.Meta.Count += uncounted
	l.Unreachable = unreachable
	writeJSON(w, http.StatusOK, l)
	return nil
}

type routeJSON struct {
	Node   string `json:"node"`
	Filter string `json:"filter"`
}

// getRoutes answers which nodes route a topic (?topic), or lists the route
// tables this node holds, its own and the other nodes' (?filter narrows
// them to one filter).
func (s *Server) getRoutes(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	cl := s.n.Cluster
	if q.Has("topic") {
		topic := q.Get("topic")
		if err := codec.ValidateTopicName([]byte(topic)); err != nil || topic == "" {
			return errorf(http.StatusBadRequest, "topic %q is not a valid topic name", topic)
		}
		nodes := []string{}
		if s.localMatch(topic) {
			nodes = append(nodes, s.id)
		}
		if cl != nil {
			nodes = append(nodes, cl.RemoteRoutes().Nodes([]byte(topic), nil)...)
		}
		slices.Sort(nodes)
		nodes = slices.Compact(nodes)
		writeJSON(w, http.StatusOK, map[string]any{"topic": topic, "nodes": nodes})
		return nil
	}
	p, err := paging(r)
	if err != nil {
		return err
	}
	filter := q.Get("filter")
	var all []routeJSON
	add := func(node string, filters []string) {
		for _, f := range filters {
			if filter == "" || f == filter {
				all = append(all, routeJSON{Node: node, Filter: f})
			}
		}
	}
	if cl != nil {
		add(s.id, cl.Routes().Snapshot().Filters)
		for _, m := range cl.Gossip().Members() {
			if t, ok := cl.RemoteRoutes().Table(m.Name); ok && m.Name != s.id {
				add(m.Name, t.Filters)
			}
		}
	}
	slices.SortFunc(all, func(a, b routeJSON) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Filter, b.Filter)
	})
	writeJSON(w, http.StatusOK, paged(all, p))
	return nil
}

// localMatch reports whether a session of this node subscribes to topic.
func (s *Server) localMatch(topic string) bool {
	if cl := s.n.Cluster; cl != nil {
		for _, f := range cl.Routes().Snapshot().Filters {
			if broker.TopicMatch(shareFilter(f), topic) {
				return true
			}
		}
		return false
	}
	subs, err := s.n.Broker.SubscriptionsOf("", false)
	if err != nil {
		return false
	}
	for _, sub := range subs {
		if broker.TopicMatch(shareFilter(sub.Filter), topic) {
			return true
		}
	}
	return false
}

// shareFilter strips a $share/{group}/ or $queue/ prefix.
func shareFilter(f string) string {
	if rest, ok := strings.CutPrefix(f, "$share/"); ok {
		if _, filter, ok := strings.Cut(rest, "/"); ok {
			return filter
		}
	}
	if rest, ok := strings.CutPrefix(f, "$queue/"); ok {
		return rest
	}
	return f
}

// --- retained and publish ---

type messageJSON struct {
	Topic           string          `json:"topic"`
	Payload         string          `json:"payload"`
	PayloadEncoding string          `json:"payload_encoding"` // plain or base64
	QoS             byte            `json:"qos"`
	Retain          bool            `json:"retain,omitempty"`
	Properties      *propertiesJSON `json:"properties,omitempty"`
}

type propertiesJSON struct {
	PayloadFormat   *byte          `json:"payload_format_indicator,omitempty"`
	MessageExpiry   *uint32        `json:"message_expiry,omitempty"` // seconds
	ContentType     string         `json:"content_type,omitempty"`
	ResponseTopic   string         `json:"response_topic,omitempty"`
	CorrelationData string         `json:"correlation_data,omitempty"` // base64
	User            []userProperty `json:"user_properties,omitempty"`
}

type userProperty struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func messageOf(m *broker.Message) messageJSON {
	mj := messageJSON{Topic: string(m.Topic), QoS: m.QoS, Retain: m.Retain, PayloadEncoding: "plain"}
	if printable(m.Payload) {
		mj.Payload = string(m.Payload)
	} else {
		mj.Payload, mj.PayloadEncoding = base64.StdEncoding.EncodeToString(m.Payload), "base64"
	}
	pr := &m.Props
	var pj propertiesJSON
	set := false
	if pr.Has(codec.PropPayloadFormat) {
		v := pr.PayloadFormat
		pj.PayloadFormat, set = &v, true
	}
	if m.ExpiresAt != 0 {
		left := uint32(max(0, time.Until(time.Unix(0, m.ExpiresAt)).Seconds()))
		pj.MessageExpiry, set = &left, true
	}
	if pr.Has(codec.PropContentType) {
		pj.ContentType, set = string(pr.ContentType), true
	}
	if pr.Has(codec.PropResponseTopic) {
		pj.ResponseTopic, set = string(pr.ResponseTopic), true
	}
	if pr.Has(codec.PropCorrelationData) {
		pj.CorrelationData, set = base64.StdEncoding.EncodeToString(pr.CorrelationData), true
	}
	for _, u := range pr.User {
		pj.User, set = append(pj.User, userProperty{Key: string(u.Key), Value: string(u.Value)}), true
	}
	if set {
		mj.Properties = &pj
	}
	return mj
}

// printable reports whether p reads as text: UTF-8 without control
// characters other than tab, newline and carriage return.
func printable(p []byte) bool {
	if !utf8.Valid(p) {
		return false
	}
	for _, r := range string(p) {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return false
		}
	}
	return true
}

func (s *Server) getRetainedList(w http.ResponseWriter, r *http.Request) error {
	p, err := paging(r)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "#"
	}
	if err := codec.ValidateTopicFilter([]byte(filter)); err != nil {
		return errorf(http.StatusBadRequest, "filter %q is not a valid topic filter: %v", filter, err)
	}
	all := []messageJSON{}
	s.n.Broker.Retained(filter, func(m *broker.Message) bool {
		all = append(all, messageOf(m))
		return true
	})
	slices.SortFunc(all, func(a, b messageJSON) int { return strings.Compare(a.Topic, b.Topic) })
	writeJSON(w, http.StatusOK, paged(all, p))
	return nil
}

// retainedTopic is the {topic...} of the path, checked.
func retainedTopic(r *http.Request) (string, error) {
	topic := r.PathValue("topic")
	if topic == "" || codec.ValidateTopicName([]byte(topic)) != nil {
		return "", errorf(http.StatusBadRequest, "topic %q is not a valid topic name (escape its slashes as %%2F)", topic)
	}
	return topic, nil
}

func (s *Server) getRetained(w http.ResponseWriter, r *http.Request) error {
	topic, err := retainedTopic(r)
	if err != nil {
		return err
	}
	var found *broker.Message
	s.n.Broker.Retained(topic, func(m *broker.Message) bool {
		if string(m.Topic) == topic {
			found = m
			return false
		}
		return true
	})
	if found == nil {
		return errorf(http.StatusNotFound, "no retained message on %q", topic)
	}
	writeJSON(w, http.StatusOK, messageOf(found))
	return nil
}

func (s *Server) deleteRetained(w http.ResponseWriter, r *http.Request) error {
	topic, err := retainedTopic(r)
	if err != nil {
		return err
	}
	found := false
	s.n.Broker.Retained(topic, func(m *broker.Message) bool {
		found = string(m.Topic) == topic
		return !found
	})
	if !found {
		return errorf(http.StatusNotFound, "no retained message on %q", topic)
	}
	if err := s.n.Broker.SetRetained(&broker.Message{Topic: []byte(topic), Retain: true}); err != nil {
		return s.raftError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": topic})
	return nil
}

func (s *Server) postPublish(w http.ResponseWriter, r *http.Request) error {
	var req messageJSON
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	m, err := toMessage(&req, s.n.Broker.Config().MaxPacketSize)
	if err != nil {
		return err
	}
	if err := s.n.Broker.Inject(m); err != nil {
		return s.raftError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"published": req.Topic, "qos": req.QoS, "retain": req.Retain,
		"bytes": len(m.Payload)})
	return nil
}

// toMessage checks a publish request and builds its message.
func toMessage(req *messageJSON, maxPacket int) (*broker.Message, error) {
	if req.Topic == "" {
		return nil, errorf(http.StatusBadRequest, "topic: a topic name is required")
	}
	if err := codec.ValidateTopicName([]byte(req.Topic)); err != nil {
		return nil, errorf(http.StatusBadRequest, "topic %q is not a valid topic name: %v", req.Topic, err) // [MQTT-3.3.2-2]
	}
	if req.QoS > 2 {
		return nil, errorf(http.StatusBadRequest, "qos %d must be 0, 1 or 2", req.QoS)
	}
	m := &broker.Message{Topic: []byte(req.Topic), QoS: req.QoS, Retain: req.Retain}
	switch req.PayloadEncoding {
	case "", "plain":
		m.Payload = []byte(req.Payload)
	case "base64":
		b, err := base64.StdEncoding.DecodeString(req.Payload)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "payload is not base64: %v", err)
		}
		m.Payload = b
	default:
		return nil, errorf(http.StatusBadRequest, "payload_encoding %q must be plain or base64", req.PayloadEncoding)
	}
	if maxPacket > 0 && len(m.Payload)+len(m.Topic) > maxPacket {
		return nil, errorf(http.StatusBadRequest, "payload: %d bytes is over max-packet-size %d", len(m.Payload), maxPacket)
	}
	if pj := req.Properties; pj != nil {
		pr := &m.Props
		if pj.PayloadFormat != nil {
			if *pj.PayloadFormat > 1 {
				return nil, errorf(http.StatusBadRequest, "properties.payload_format_indicator %d must be 0 or 1", *pj.PayloadFormat)
			}
			if *pj.PayloadFormat == 1 && !utf8.Valid(m.Payload) {
				return nil, errorf(http.StatusBadRequest, "payload is not UTF-8 but payload_format_indicator is 1") // [MQTT-3.3.2-4]
			}
			pr.PayloadFormat = *pj.PayloadFormat
			pr.Set(codec.PropPayloadFormat)
		}
		if pj.MessageExpiry != nil && *pj.MessageExpiry > 0 {
			pr.MessageExpiry = *pj.MessageExpiry
			pr.Set(codec.PropMessageExpiry)
			m.ExpiresAt = time.Now().Add(time.Duration(*pj.MessageExpiry) * time.Second).UnixNano()
		}
		if pj.ContentType != "" {
			pr.ContentType = []byte(pj.ContentType)
			pr.Set(codec.PropContentType)
		}
		if pj.ResponseTopic != "" {
			if err := codec.ValidateTopicName([]byte(pj.ResponseTopic)); err != nil {
				return nil, errorf(http.StatusBadRequest, "properties.response_topic %q is not a valid topic name", pj.ResponseTopic) // [MQTT-3.3.2-14]
			}
			pr.ResponseTopic = []byte(pj.ResponseTopic)
			pr.Set(codec.PropResponseTopic)
		}
		if pj.CorrelationData != "" {
			b, err := base64.StdEncoding.DecodeString(pj.CorrelationData)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "properties.correlation_data is not base64: %v", err)
			}
			pr.CorrelationData = b
			pr.Set(codec.PropCorrelationData)
		}
		for i, u := range pj.User {
			if u.Key == "" {
				return nil, errorf(http.StatusBadRequest, "properties.user_properties[%d].key is empty", i)
			}
			pr.User = append(pr.User, codec.UserProperty{Key: []byte(u.Key), Value: []byte(u.Value)})
		}
		if len(pr.User) > 0 {
			pr.Set(codec.PropUser)
		}
	}
	return m, nil
}

// --- stats ---

func (s *Server) getStats(w http.ResponseWriter, _ *http.Request) error {
	b := s.n.Broker
	st := b.Stats()
	node := map[string]any{
		"connections":               st.ConnectionsOpen.Load(),
		"clients_connected":         st.ClientsConnected.Load(),
		"connects_total":            st.ConnectsTotal.Load(),
		"sessions":                  b.SessionCount(),
		"subscriptions":             b.SubscriptionCount(),
		"retained":                  b.RetainedCount(),
		"messages_received":         broker.Sum(&st.PublishReceived),
		"messages_sent":             broker.Sum(&st.PublishSent),
		"messages_received_by_qos":  [3]uint64{st.PublishReceived[0].Load(), st.PublishReceived[1].Load(), st.PublishReceived[2].Load()},
		"messages_sent_by_qos":      [3]uint64{st.PublishSent[0].Load(), st.PublishSent[1].Load(), st.PublishSent[2].Load()},
		"bytes_received":            st.BytesReceived.Load(),
		"bytes_sent":                st.BytesSent.Load(),
		"dropped_qos0_overflow":     st.DroppedQoS0.Load(),
		"dropped_queue_full":        st.DroppedQueueFull.Load(),
		"dropped_too_large":         st.DroppedTooLarge.Load(),
		"dropped_expired":           st.DroppedExpired.Load(),
		"publisher_pauses":          st.PublisherPauses.Load(),
		"slow_consumer_disconnects": st.SlowConsumerKicks.Load(),
		"protocol_errors":           st.ProtocolErrors.Load(),
		"keepalive_timeouts":        st.KeepaliveTimeouts.Load(),
		"wills_published":           st.WillsPublished.Load(),
		"sessions_taken_over":       st.SessionsTakenOver.Load(),
		"sessions_expired":          st.SessionsExpired.Load(),
		"auth_failures":             st.AuthFailures.Load(),
		"forwarded_out":             st.ForwardedOut.Load(),
		"forwarded_in":              st.ForwardedIn.Load(),
		"sessions_moved":            st.SessionsMoved.Load(),
		"sessions_arrived":          st.SessionsArrived.Load(),
		"takeover_state_lost":       st.TakeoverStateLost.Load(),
		"uptime_seconds":            sinceSeconds(b.Started()),
	}
	out := map[string]any{"node": s.id, "stats": node}
	if n := s.n.Raft; n != nil {
		st := n.Status()
		cs := map[string]any{"registry_sessions": st.FSM.Sessions, "registry_subscriptions": st.FSM.Subscriptions,
			"retained": st.FSM.Retained, "retained_bytes": st.FSM.RetainedBytes, "raft_servers": len(st.Servers)}
		if cl := s.n.Cluster; cl != nil {
			var clients uint64
			alive := 0
			for _, m := range cl.Gossip().Members() {
				if m.State == cluster.MemberAlive {
					alive++
					clients += m.Meta.Clients
				}
			}
			cs["members_alive"], cs["clients_connected"] = alive, clients
		} else {
			cs["members_alive"], cs["clients_connected"] = 1, st2u(b.Stats().ClientsConnected.Load())
		}
		out["cluster"] = cs
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func st2u(v int64) uint64 { return uint64(max(0, v)) }
