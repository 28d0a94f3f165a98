// Package fsm is FlockMQ's raft state machine: the session registry,
// persistent subscriptions, retained messages and will metadata, with a
// versioned command encoding and copy-on-write snapshots.
//
// The package is pure: no clocks (time arrives in commands as unix ms), no
// randomness, no goroutines, no logging, and no I/O besides the snapshot
// sink and reader that raft hands it. Every replica that applies the same log
// reaches the same state.
//
// # Commands
//
// One raft log entry carries one Batch: the ops one node's proposer gathered
// (SessionClaim, SessionDisconnected, SessionExpired, SessionRelease,
// Subscribe, Unsubscribe, RetainedSet, RetainedDelete, NodeDown, WillDone)
// with an idempotency key (Node, Boot, Seq). Encode with AppendBatch; the
// format starts with CommandVersion and is described there. The response of
// an entry is a []Result, one per op (see FSM.ApplyBatch).
//
// # Idempotency
//
// The FSM keeps, per (Node, Boot), the highest Seq applied and the results
// of the last DedupWindow batches. A retried batch (after
// raft.ErrLeadershipLost, or forwarded twice) is not applied again: within
// the window it gets the results recorded the first time, older ones get
// CodeDuplicate per op. The window is part of the snapshot, so a new leader
// restored from a snapshot answers retries the same way. NodeDown fences a
// boot: its late batches get CodeFenced.
//
// # Epochs
//
// A claim's epoch comes from its raft log index (EpochIndex): index<<16 |
// position in the batch. Session ops carry the epoch they were issued under
// and are rejected with CodeStale when a newer claim replaced it, so a late
// op from an old owner changes nothing. The claim hook (FSM.SetClaimHook)
// tells the cluster layer to close older connections of the client id.
//
// # Expiry and wills
//
// Expiry follows MQTT 5: 0 ends the session at disconnect, ExpiryNever
// never; MQTT 3.x clean session 0 is ExpiryNever unless ExpiryPolicy caps
// it. The FSM only stores times; the leader's housekeeping reads
// ExpiredSessions, PendingWills and ExpiredRetained with its clock and
// proposes SessionExpired, WillDone and RetainedDelete.
//
// # State and concurrency
//
// The state is a set of ordered maps held in copy-on-write B-trees
// (google/btree, already in the module graph through memberlist; see
// tree.go). Only the applying goroutine writes, to its working trees; after
// every ApplyBatch it publishes O(1) clones through an atomic pointer.
// Snapshot is therefore O(1) and Persist streams a point-in-time view while
// Apply goes on; the read views (Session, RetainedMatch, Stats, ...) never
// lock. The retained index used by RetainedMatch is the retained tree
// itself, keyed so that topic filters resolve by prefix walks and seeks;
// Restore rebuilds it and the other derived indexes (owners, expiry and will
// queues) from the snapshot records. FSM.mu is the package's only lock and
// it starts no goroutines.
//
// Snapshot format: magic "FLKMQSNP", version, counts, session, retained
// and boot records, 'E', CRC-32C. See snapshot.go.
package fsm
