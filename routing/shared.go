package routing

import (
	"math/rand/v2"
	"sync/atomic"
)

// ShareStrategy chooses which member of a shared subscription group receives
// a message. Each matching group delivers a message to exactly one member
// (section 4.8.2), with that member's granted QoS [MQTT-4.8.2-3].
type ShareStrategy uint8

const (
	// ShareRoundRobin cycles through the members with an atomic counter per
	// group, so concurrent matches never take a lock for the pick.
	ShareRoundRobin ShareStrategy = iota
	// ShareRandom picks a uniformly random member.
	ShareRandom
	// ShareHash picks by a hash of the publisher's client identifier, so one
	// publisher's messages stick to one member while membership is unchanged.
	ShareHash
)

// String returns the strategy's config name.
func (s ShareStrategy) String() string {
	switch s {
	case ShareRoundRobin:
		return "round_robin"
	case ShareRandom:
		return "random"
	case ShareHash:
		return "hash_clientid"
	}
	return "unknown"
}

// SharedMatch is the one member picked from a matching shared group.
type SharedMatch struct {
	Group  string // share name; QueueGroup for $queue/ subscriptions
	Filter string // topic filter after the $share/{group}/ prefix
	Subscriber
}

// shareGroup holds the members of one (share name, topic filter) pair. Members
// change under the trie's write lock; next is advanced atomically by concurrent
// matches holding the read lock.
type shareGroup struct {
	name    string
	filter  string
	members subList
	next    atomic.Uint64 // round-robin counter
}

// pick chooses a member by strategy. With skip set, the member whose ID is
// exclude is never chosen (redelivery away from a leaving member). It reports
// false when no eligible member exists. Trie.mu must be held (read or write).
func (g *shareGroup) pick(strategy ShareStrategy, publisher string, exclude uint64, skip bool) (Subscriber, bool) {
	list := g.members.list
	n := uint64(len(list))
	ex := -1 // position of the excluded member, if present
	if skip {
		ex = g.members.find(exclude)
		if ex >= 0 {
			n--
		}
	}
	if n == 0 {
		return Subscriber{}, false
	}
	i := g.choose(strategy, publisher, n)
	// Choose the i-th eligible member: positions at or past the excluded one
	// shift by one.
	if ex >= 0 && i >= uint64(ex) {
		i++
	}
	return list[i], true
}

// choose returns a position in [0, n) by strategy; n > 0.
func (g *shareGroup) choose(strategy ShareStrategy, publisher string, n uint64) uint64 {
	switch strategy {
	case ShareRandom:
		return rand.Uint64N(n)
	case ShareHash:
		return hashString(publisher) % n
	}
	return (g.next.Add(1) - 1) % n
}

// pickLocal chooses, by strategy, among the members that are not remote
// nodes' entries. It reports false when there is none. Trie.mu must be held.
func (g *shareGroup) pickLocal(strategy ShareStrategy, publisher string) (Subscriber, bool) {
	list := g.members.list
	n := uint64(0)
	for i := range list {
		if !IsRemote(list[i].ID) {
			n++
		}
	}
	if n == 0 {
		return Subscriber{}, false
	}
	k := g.choose(strategy, publisher, n)
	for i := range list {
		if IsRemote(list[i].ID) {
			continue
		}
		if k == 0 {
			return list[i], true
		}
		k--
	}
	return Subscriber{}, false
}

// hashString is 64-bit FNV-1a. It is deterministic across processes, so every
// node of a cluster maps a publisher to the same position.
func hashString(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}
