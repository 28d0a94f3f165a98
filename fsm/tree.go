package fsm

import (
	"strings"

	"github.com/google/btree"
)

// The state's ordered maps are copy-on-write B-trees (google/btree). The
// writer mutates its working trees in place; after each ApplyBatch it
// publishes Clone()s of them, which share every node and are never written
// again: the writer copies a shared node before changing it. Readers and
// snapshots therefore see an immutable point-in-time tree without locks,
// and publishing costs O(1).

// treeDegree keeps nodes at most 31 entries, so the first write to a shared
// path copies a few hundred bytes per level.
const treeDegree = 16

// kv is one entry of a tree: a string key and a value.
type kv[V any] struct {
	k string
	v V
}

type tree[V any] = btree.BTreeG[kv[V]]

func lessKV[V any](a, b kv[V]) bool { return a.k < b.k }

func newTree[V any]() *tree[V] { return btree.NewG(treeDegree, lessKV[V]) }

func get[V any](t *tree[V], k string) (V, bool) {
	e, ok := t.Get(kv[V]{k: k})
	return e.v, ok
}

func put[V any](t *tree[V], k string, v V) { t.ReplaceOrInsert(kv[V]{k, v}) }

func del[V any](t *tree[V], k string) { t.Delete(kv[V]{k: k}) }

// walkPrefix calls fn in key order for the entries whose key starts with
// prefix, until fn returns false.
func walkPrefix[V any](t *tree[V], prefix string, fn func(k string, v V) bool) {
	t.AscendGreaterOrEqual(kv[V]{k: prefix}, func(e kv[V]) bool {
		return strings.HasPrefix(e.k, prefix) && fn(e.k, e.v)
	})
}

// seek returns the first entry whose key is >= k.
func seek[V any](t *tree[V], k string) (kv[V], bool) {
	var out kv[V]
	found := false
	t.AscendGreaterOrEqual(kv[V]{k: k}, func(e kv[V]) bool {
		out, found = e, true
		return false
	})
	return out, found
}

// walk calls fn for every entry in key order until it returns false.
func walk[V any](t *tree[V], fn func(k string, v V) bool) {
	t.Ascend(func(e kv[V]) bool { return fn(e.k, e.v) })
}
