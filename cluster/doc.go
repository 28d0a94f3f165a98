// Package cluster is a node's replicated side: hashicorp/raft over the fsm
// package, and the broker.Store that proposes through it.
//
//   - Node (node.go) opens a node's data dir (its stable id, raft's bolt log
//     and snapshots), bootstraps or joins the cluster, and, while it leads,
//     runs the housekeeping that expires sessions and retained messages and
//     publishes the wills of sessions whose node is gone. Status, Join,
//     Remove and ParsePeers (membership.go) serve the operator.
//   - Raft (raft.go) is the raft instance with its stores and transport; its
//     own log lines go to the node's slog logger (raftlog.go).
//   - Proposer (proposer.go) gathers the node's ops into batches, one log
//     entry each with an idempotency key, and submits them in order: applied
//     here when this node leads, forwarded to the leader otherwise. Its
//     queue is bounded (MaxPending; ErrBacklog beyond it).
//   - Store (store.go) implements broker.Store: writes are proposer ops that
//     complete on commit, reads come from the local FSM replica.
//   - One TCP port carries raft and the forwarding RPC (mux.go, forward.go):
//     the first byte of a connection says which.
//
// Membership is static or changed by the operator (Join, Remove). Gossip
// (gossip.go) runs memberlist with node metadata and carries the route
// tables of package routing (deltas, pulls, push/pull anti-entropy, a leave
// notice that drops a leaving node's routes at once, a grace period for a
// failed one). The peer link (peerlink.go) is one ordered TCP stream to
// each other node carrying opaque frames, bounded in bytes, acknowledged
// cumulatively and replayed after a reconnect. No node uses either yet:
// issue 11 wires them in. Goroutines and locks are listed in
// docs/threads.md.
//
// With a cluster key (NodeConfig.Key, ParseClusterKey; clusterkey.go) only
// nodes holding it may use the three ports: memberlist encrypts and
// authenticates gossip with it, and every connection to the peer link and
// raft ports starts with a mutual HMAC challenge-response; what fails is
// closed, logged (rate limited) and counted (ClusterStats). The key does
// not encrypt the peer link or raft traffic itself.
package cluster
