// Package cluster wires raft, memberlist and the peer link between nodes.
// Nothing is in it yet beyond a check that the pinned stack builds and runs.
package cluster
