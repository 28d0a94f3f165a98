// Package routing is the local subscription index: every PUBLISH is matched
// against it once; and the cluster's subscription routes (routes.go): this
// node's route table and the other nodes', a state-based CRDT with deltas,
// snapshots and their wire encoding, which the cluster package gossips. It
// is pure: no I/O, no goroutines, no logging. It imports only the standard
// library and codec.
//
// # Shape
//
// A Trie is shaped like nats-server's sublist: filters are split into levels
// on '/', each level holds a map of literal children plus one '+' and one '#'
// child, and every node keeps the subscriptions whose filter ends there.
// Subscriptions are Subscriber values stored per (filter, subscriber ID);
// subscribing again replaces [MQTT-3.8.4-3]. Shared subscriptions
// ($share/{group}/{filter}, and $queue/{filter} as group "$queue") live at the
// node of their filter as groups, one per (group, filter).
//
// # Semantics (MQTT 3.1.1 and 5.0, section 4.7)
//
//   - Levels are compared byte-wise, case sensitive; empty levels are levels
//     ("a//b", "/a", "a/").
//   - '+' matches exactly one level; '#' matches its parent level and every
//     level below, so "a/#" matches "a".
//   - Topics starting with '$' are not matched by filters starting with '+' or
//     '#' [MQTT-4.7.2-1].
//   - Each matching shared group yields exactly one member, picked by the
//     Trie's ShareStrategy: round-robin (an atomic counter per group), random,
//     or a hash of the publisher's client identifier.
//
// # Results
//
// Match writes into a caller-owned Result: plain subscriptions in Result.Subs,
// one entry per matching (filter, subscriber), and shared picks in
// Result.Shared. Entries are values copied out of the trie, so a Result never
// aliases trie memory. Result.Merge folds Subs into one Delivery per subscriber
// (maximum QoS, all subscription identifiers, No Local applied), sorting and
// compacting in place. A Result reused per event loop makes Match and Merge
// allocation-free.
//
// # Concurrency
//
// A Trie is safe for concurrent use. Match, PickShared and the counters take
// the read lock (counters are atomics and take none), so every event loop
// matches in parallel; the shared-group round-robin counters are atomics
// advanced under the read lock. Subscribe, Unsubscribe and RemoveAll take the
// write lock. Trie.mu is a leaf lock: nothing outside the package is called
// while it is held, so it has no place in the broker's lock order other than
// "last".
//
// # Match cache
//
// With Options.CacheSize > 0 the Trie keeps a bounded, direct-mapped cache of
// match results keyed by topic and checked against a generation number that
// every Subscribe and Unsubscribe bumps (nats' genid), so a change invalidates
// all entries at once and no entry is ever stale. A topic is cached on its
// second consecutive miss, so one-off topics never allocate; results of more
// than 256 subscriptions are not cached. Shared picks are made fresh on every
// match, cached or not. The cache pays off for hot topic sets (see the
// benchmarks) and costs a few percent on streams of distinct topics.
package routing
