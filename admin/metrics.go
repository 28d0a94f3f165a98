package admin

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flockmq/flockmq/broker"
	"github.com/flockmq/flockmq/cluster"
)

// collector exposes the broker's and the cluster's counters. It reads the
// atomics they keep anyway at each scrape: nothing is counted twice on the
// message path.
type collector struct {
	s     *Server
	descs map[string]*prometheus.Desc
}

type metricDef struct {
	name   string
	help   string
	labels []string
}

// metricDefs lists every metric of the collector; docs/admin.md mirrors it.
var metricDefs = []metricDef{
	{"flockmq_connections", "Open network connections, CONNECT answered or not.", nil},
	{"flockmq_clients_connected", "Clients connected (CONNECT accepted).", nil},
	{"flockmq_connects_total", "CONNECT packets accepted.", nil},
	{"flockmq_sessions", "Sessions on this node, connected or not.", nil},
	{"flockmq_subscriptions", "Subscriptions indexed on this node (local sessions).", nil},
	{"flockmq_retained_messages", "Retained messages stored.", nil},
	{"flockmq_packets_received_total", "MQTT control packets received.", nil},
	{"flockmq_bytes_received_total", "Bytes read from client connections.", nil},
	{"flockmq_bytes_sent_total", "Bytes written to client connections.", nil},
	{"flockmq_messages_received_total", "PUBLISH packets received from clients, by QoS.", []string{"qos"}},
	{"flockmq_messages_sent_total", "PUBLISH packets sent to clients, by QoS.", []string{"qos"}},
	{"flockmq_payload_bytes_received_total", "Payload bytes of the PUBLISH packets received, by QoS.", []string{"qos"}},
	{"flockmq_payload_bytes_sent_total", "Payload bytes of the PUBLISH packets sent, by QoS.", []string{"qos"}},
	{"flockmq_messages_dropped_total", "Messages dropped, by reason: qos0_overflow (QoS 0 past a full loop mailbox or session queue), slow_consumer (QoS 0 to a client over outbound-high-water), queue_full (QoS 1/2 past the offline queue of a session), too_large (over the client's Maximum Packet Size), expired (message expiry passed while queued), moved_lost (sent on by a session's old node: no session here, or it resumed without them).", []string{"reason"}},
	{"flockmq_publisher_pauses_total", "Times a publisher was held back by flow control.", nil},
	{"flockmq_queued_messages", "Messages queued for sessions that hold publishers back.", nil},
	{"flockmq_disconnects_total", "Connections the broker closed for the client's fault or a timeout, by reason (takeovers and refused CONNECTs have their own counters).", []string{"reason"}},
	{"flockmq_wills_published_total", "Will messages published.", nil},
	{"flockmq_sessions_taken_over_total", "Connections closed because a new one took their session.", nil},
	{"flockmq_sessions_expired_total", "Sessions ended by their expiry interval.", nil},
	{"flockmq_auth_failures_total", "CONNECT packets refused by authentication.", nil},
	{"flockmq_store_failures_total", "Store (raft) operations that failed.", nil},
	{"flockmq_shared_redelivered_total", "Shared subscription messages given to another member.", nil},
	{"flockmq_loop_panics_total", "Panics recovered on an event loop.", nil},
	{"flockmq_forwarded_total", "Messages forwarded between nodes, by direction: out (copies sent), in (received), unserved (shared copies with no local member on arrival).", []string{"direction"}},
	{"flockmq_takeovers_total", "Sessions moved between nodes, by event: moved (handed to another node), arrived (state received), state_lost (resumed without its state).", []string{"event"}},
	{"flockmq_uptime_seconds", "Seconds since the broker started.", nil},
	{"flockmq_info", "The node's id and version, value 1.", []string{"node", "version"}},

	{"flockmq_raft_state", "Raft state of this node: 1 for the current one.", []string{"state"}},
	{"flockmq_raft_term", "Raft term.", nil},
	{"flockmq_raft_commit_index", "Raft commit index known to this node.", nil},
	{"flockmq_raft_applied_index", "Raft index applied to this node's state machine.", nil},
	{"flockmq_raft_leader", "1 when raft has a leader known to this node.", nil},
	{"flockmq_raft_servers", "Servers in the raft configuration, by suffrage.", []string{"suffrage"}},
	{"flockmq_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader).", nil},
	{"flockmq_raft_apply_seconds", "Time from proposing a batch to its result, commit and apply included.", nil},
	{"flockmq_raft_batch_ops", "Operations per proposed batch.", nil},
	{"flockmq_raft_rejected_total", "Proposals refused because too many were waiting.", nil},
	{"flockmq_registry_sessions", "Sessions in the replicated registry (cluster-wide).", nil},
	{"flockmq_registry_subscriptions", "Persisted subscriptions in the replicated registry.", nil},
	{"flockmq_registry_retained_bytes", "Bytes of the retained messages (topic, payload, properties).", nil},

	{"flockmq_cluster_members", "Gossip members, by state.", []string{"state"}},
	{"flockmq_routes_local_filters", "Filters this node routes (announced to the others).", nil},
	{"flockmq_routes_remote_nodes", "Other nodes whose route tables this node holds.", nil},
	{"flockmq_routes_missing_tables", "Live members whose route table this node does not hold yet (0 once gossip converged).", nil},
	{"flockmq_gossip_route_pulls_total", "Route table pulls this node sent after seeing a gap or an unknown node.", nil},
	{"flockmq_gossip_send_drops_total", "Reliable gossip sends dropped on a full queue.", nil},
	{"flockmq_peer_link_queue_bytes", "Bytes queued or unacknowledged on the peer link to a node.", []string{"peer"}},
	{"flockmq_peer_link_frames_sent_total", "Frames written to a node for the first time.", []string{"peer"}},
	{"flockmq_peer_link_frames_replayed_total", "Frames written again after a reconnect.", []string{"peer"}},
	{"flockmq_peer_link_frames_acked_total", "Frames acknowledged by a node.", []string{"peer"}},
	{"flockmq_peer_link_lag_frames", "Frames sent to a node and not yet acknowledged.", []string{"peer"}},
	{"flockmq_peer_link_reconnects_total", "Reconnections of the peer link to a node.", []string{"peer"}},
	{"flockmq_peer_link_forward_dropped_total", "Forwarded messages dropped because a link was full.", nil},
	{"flockmq_peer_link_bad_frames_total", "Malformed frames received from other nodes.", nil},
	{"flockmq_cluster_key_refused_total", "Connections and gossip messages refused for a missing or wrong cluster key, by port.", []string{"port"}},
	{"flockmq_acl_denied_total", "Operations the authorization refused, by kind: publish (PUBLISH and wills), subscribe (filters), read (retained messages on subscribe).", []string{"kind"}},
	{"flockmq_auth_expired_total", "Connections closed when their credentials (a JWT) expired.", nil},
}

func newCollector(s *Server) *collector {
	c := &collector{s: s, descs: map[string]*prometheus.Desc{}}
	for _, d := range metricDefs {
		c.descs[d.name] = prometheus.NewDesc(d.name, d.help, d.labels, nil)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b := c.s.n.Broker
	st := b.Stats()
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}
	gauge("flockmq_connections", float64(st.ConnectionsOpen.Load()))
	gauge("flockmq_clients_connected", float64(st.ClientsConnected.Load()))
	counter("flockmq_connects_total", st.ConnectsTotal.Load())
	gauge("flockmq_sessions", float64(b.SessionCount()))
	gauge("flockmq_subscriptions", float64(b.SubscriptionCount()))
	gauge("flockmq_retained_messages", float64(b.RetainedCount()))
	counter("flockmq_packets_received_total", st.MessagesReceived.Load())
	counter("flockmq_bytes_received_total", st.BytesReceived.Load())
	counter("flockmq_bytes_sent_total", st.BytesSent.Load())
	for q := range 3 {
		qs := strconv.Itoa(q)
		counter("flockmq_messages_received_total", st.PublishReceived[q].Load(), qs)
		counter("flockmq_messages_sent_total", st.PublishSent[q].Load(), qs)
		counter("flockmq_payload_bytes_received_total", st.PayloadReceived[q].Load(), qs)
		counter("flockmq_payload_bytes_sent_total", st.PayloadSent[q].Load(), qs)
	}
	slow := st.DroppedQoS0Slow.Load()
	counter("flockmq_messages_dropped_total", st.DroppedQoS0.Load()-min(slow, st.DroppedQoS0.Load()), "qos0_overflow")
	counter("flockmq_messages_dropped_total", slow, "slow_consumer")
	counter("flockmq_messages_dropped_total", st.DroppedQueueFull.Load(), "queue_full")
	counter("flockmq_messages_dropped_total", st.DroppedTooLarge.Load(), "too_large")
	counter("flockmq_messages_dropped_total", st.DroppedExpired.Load(), "expired")
	counter("flockmq_messages_dropped_total", st.MovedMessagesLost.Load(), "moved_lost")
	counter("flockmq_publisher_pauses_total", st.PublisherPauses.Load())
	gauge("flockmq_queued_messages", float64(st.QueuedMessagesHeld.Load()))
	counter("flockmq_disconnects_total", st.SlowConsumerKicks.Load(), "slow_consumer")
	counter("flockmq_disconnects_total", st.ProtocolErrors.Load(), "protocol_error")
	counter("flockmq_disconnects_total", st.KeepaliveTimeouts.Load(), "keepalive_timeout")
	counter("flockmq_disconnects_total", st.ConnectTimeouts.Load(), "connect_timeout")
	counter("flockmq_disconnects_total", st.PacketsTooLarge.Load(), "packet_too_large")
	counter("flockmq_wills_published_total", st.WillsPublished.Load())
	counter("flockmq_sessions_taken_over_total", st.SessionsTakenOver.Load())
	counter("flockmq_sessions_expired_total", st.SessionsExpired.Load())
	counter("flockmq_auth_failures_total", st.AuthFailures.Load())
	counter("flockmq_store_failures_total", st.StoreFailures.Load())
	counter("flockmq_shared_redelivered_total", st.SharedRedelivered.Load())
	counter("flockmq_loop_panics_total", st.Panics.Load())
	counter("flockmq_forwarded_total", st.ForwardedOut.Load(), "out")
	counter("flockmq_forwarded_total", st.ForwardedIn.Load(), "in")
	counter("flockmq_forwarded_total", st.ForwardedUnserved.Load(), "unserved")
	counter("flockmq_takeovers_total", st.SessionsMoved.Load(), "moved")
	counter("flockmq_takeovers_total", st.SessionsArrived.Load(), "arrived")
	counter("flockmq_takeovers_total", st.TakeoverStateLost.Load(), "state_lost")
	counter("flockmq_acl_denied_total", st.PublishDenied.Load(), "publish")
	counter("flockmq_acl_denied_total", st.SubscribeDenied.Load(), "subscribe")
	counter("flockmq_acl_denied_total", st.ReadDenied.Load(), "read")
	counter("flockmq_auth_expired_total", st.AuthExpired.Load())
	gauge("flockmq_uptime_seconds", sinceSeconds(b.Started()))
	gauge("flockmq_info", 1, c.s.id, broker.Version)

	if n := c.s.n.Raft; n != nil {
		rs := n.Status()
		for _, state := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
			v := 0.0
			if rs.State == state {
				v = 1
			}
			gauge("flockmq_raft_state", v, strings.ToLower(state))
		}
		gauge("flockmq_raft_term", float64(rs.Term))
		gauge("flockmq_raft_commit_index", float64(rs.CommitIndex))
		gauge("flockmq_raft_applied_index", float64(rs.AppliedIndex))
		leader := 0.0
		if rs.LeaderID != "" {
			leader = 1
		}
		gauge("flockmq_raft_leader", leader)
		voters, nonvoters := 0, 0
		for _, sv := range rs.Servers {
			if sv.Voter {
				voters++
			} else {
				nonvoters++
			}
		}
		gauge("flockmq_raft_servers", float64(voters), "voter")
		gauge("flockmq_raft_servers", float64(nonvoters), "nonvoter")
		gauge("flockmq_raft_last_contact_seconds", rs.LastContact.Seconds())
		p := n.Proposer()
		ch <- constHistogram(c.descs["flockmq_raft_apply_seconds"], p.ApplyLatency(), 1e-9)
		ch <- constHistogram(c.descs["flockmq_raft_batch_ops"], p.BatchOps(), 1)
		counter("flockmq_raft_rejected_total", p.Rejected())
		gauge("flockmq_registry_sessions", float64(rs.FSM.Sessions))
		gauge("flockmq_registry_subscriptions", float64(rs.FSM.Subscriptions))
		gauge("flockmq_registry_retained_bytes", float64(rs.FSM.RetainedBytes))
	}

	if cl := c.s.n.Cluster; cl != nil {
		cs := cl.Stats()
		byState := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
		missing := 0
		for _, m := range cl.Gossip().Members() {
			byState[m.State.String()]++
			if m.State == cluster.MemberAlive && m.Name != c.s.id {
				if _, ok := cl.RemoteRoutes().Table(m.Name); !ok {
					missing++
				}
			}
		}
		for state, n := range byState {
			gauge("flockmq_cluster_members", float64(n), state)
		}
		gauge("flockmq_routes_local_filters", float64(cs.LocalRoutes))
		gauge("flockmq_routes_remote_nodes", float64(cs.RemoteNodes))
		gauge("flockmq_routes_missing_tables", float64(missing))
		counter("flockmq_gossip_route_pulls_total", cl.Gossip().Pulls())
		counter("flockmq_gossip_send_drops_total", cl.Gossip().SendDrops())
		for peer, ls := range cs.Links {
			gauge("flockmq_peer_link_queue_bytes", float64(ls.QueueBytes), peer)
			counter("flockmq_peer_link_frames_sent_total", ls.Sent, peer)
			counter("flockmq_peer_link_frames_replayed_total", ls.Replayed, peer)
			counter("flockmq_peer_link_frames_acked_total", ls.Acked, peer)
			gauge("flockmq_peer_link_lag_frames", float64(ls.Sent-min(ls.Acked, ls.Sent)), peer)
			counter("flockmq_peer_link_reconnects_total", ls.Reconnects, peer)
		}
		counter("flockmq_peer_link_forward_dropped_total", cs.ForwardDropped)
		counter("flockmq_peer_link_bad_frames_total", cs.BadFrames)
		counter("flockmq_cluster_key_refused_total", cs.GossipKeyRefused, "gossip")
		counter("flockmq_cluster_key_refused_total", cs.Listener.KeyRefused, "peer")
		counter("flockmq_cluster_key_refused_total", cs.RaftKeyRefused, "raft")
	}
}

// constHistogram exposes h, its values multiplied by scale (nanoseconds to
// seconds).
func constHistogram(d *prometheus.Desc, h *cluster.Histogram, scale float64) prometheus.Metric {
	bounds, cum, count, sum := h.Snapshot()
	buckets := make(map[float64]uint64, len(bounds))
	for i, b := range bounds {
		buckets[float64(b)*scale] = cum[i]
	}
	return prometheus.MustNewConstHistogram(d, count, float64(sum)*scale, buckets)
}
