package routing

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// benchMix describes how the filters of a benchmark trie are shaped.
type benchMix struct {
	name        string
	plus, hash  int // percent of filters with a '+' level, with a trailing '#'
	hotTopics   int // distinct topics matched; 0 means one per filter
	sharedEvery int // every n-th filter is also a shared subscription; 0 none
}

var benchMixes = []benchMix{
	{name: "literal"},
	{name: "mixed", plus: 10, hash: 5},
	{name: "wild", plus: 40, hash: 20},
	{name: "mixed_hot", plus: 10, hash: 5, hotTopics: 100},
	{name: "mixed_shared", plus: 10, hash: 5, sharedEvery: 10},
}

// benchFilter is filter i of a trie shaped like fleet telemetry,
// region/{r}/site/{s}/dev/{d}/{metric}, with wildcards replacing levels.
func benchFilter(rng *rand.Rand, i int, m benchMix) string {
	region, site := i%16, i%1000
	dev, metric := i, []string{"temp", "hum", "power", "state"}[i%4]
	switch k := rng.IntN(100); {
	case k < m.hash:
		switch k % 3 {
		case 0:
			return fmt.Sprintf("region/%d/site/%d/#", region, site)
		case 1:
			return fmt.Sprintf("region/%d/site/%d/dev/%d/#", region, site, dev)
		default:
			return fmt.Sprintf("region/+/site/%d/#", site)
		}
	case k < m.hash+m.plus:
		switch k % 3 {
		case 0:
			return fmt.Sprintf("region/%d/site/%d/dev/+/%s", region, site, metric)
		case 1:
			return fmt.Sprintf("region/+/site/%d/dev/%d/+", site, dev)
		default:
			return fmt.Sprintf("region/%d/site/+/dev/%d/%s", region, dev, metric)
		}
	}
	return fmt.Sprintf("region/%d/site/%d/dev/%d/%s", region, site, dev, metric)
}

func benchTopic(i int) []byte {
	return fmt.Appendf(nil, "region/%d/site/%d/dev/%d/%s", i%16, i%1000, i, []string{"temp", "hum", "power", "state"}[i%4])
}

func buildBenchTrie(b *testing.B, n int, m benchMix, cache int) *Trie {
	b.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	tr := New(Options{Strategy: ShareRoundRobin, CacheSize: cache})
	for i := range n {
		f := benchFilter(rng, i, m)
		s := Subscriber{ID: uint64(i), QoS: 1}
		mustSubscribe(b, tr, f, s)
		if m.sharedEvery > 0 && i%m.sharedEvery == 0 {
			mustSubscribe(b, tr, "$share/workers/"+f, s)
		}
	}
	runtime.GC() // do not bill the build's garbage to the timed loop
	return tr
}

func benchTopics(n int, m benchMix) [][]byte {
	count := n
	if m.hotTopics > 0 {
		count = m.hotTopics
	}
	topics := make([][]byte, count)
	for i := range topics {
		topics[i] = benchTopic(i * (n / count))
	}
	return topics
}

// BenchmarkMatch matches topics against tries of 10k and 100k filters, with
// and without the match cache. subs/op is the mean number of plain
// subscriptions plus shared picks per match.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, m := range benchMixes {
			for _, cache := range []int{0, 1024} {
				name := fmt.Sprintf("filters=%dk/%s/cache=%d", n/1000, m.name, cache)
				b.Run(name, func(b *testing.B) {
					tr := buildBenchTrie(b, n, m, cache)
					topics := benchTopics(n, m)
					var r Result
					matched, i := 0, 0
					b.ReportAllocs()
					for b.Loop() {
						tr.Match(topics[i%len(topics)], "publisher", &r)
						matched += len(r.Subs) + len(r.Shared)
						i++
					}
					b.ReportMetric(float64(matched)/float64(i), "subs/op")
				})
			}
		}
	}
}

// BenchmarkMatchParallel matches from every P at once, as the event loops do.
func BenchmarkMatchParallel(b *testing.B) {
	for _, m := range []benchMix{benchMixes[1], benchMixes[3]} {
		for _, cache := range []int{0, 1024} {
			b.Run(fmt.Sprintf("filters=100k/%s/cache=%d", m.name, cache), func(b *testing.B) {
				tr := buildBenchTrie(b, 100_000, m, cache)
				topics := benchTopics(100_000, m)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					var r Result
					for i := 0; pb.Next(); i++ {
						tr.Match(topics[i%len(topics)], "publisher", &r)
					}
				})
			})
		}
	}
}

// BenchmarkMatchMerge is the broker's per-publish routing work: Match then
// Merge into deliveries, for a publisher that is not among the subscribers.
func BenchmarkMatchMerge(b *testing.B) {
	tr := allocTrie(b, ShareRoundRobin, 0)
	topic := []byte("site/7/dev/42/temp")
	isPub := (&publisherOf{pub: 1 << 62}).is
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		tr.Match(topic, "publisher", &r)
		r.Merge(isPub)
	}
}

// BenchmarkSubscribeUnsubscribe adds and removes one subscription on a trie
// of 100k filters (one Subscribe plus one Unsubscribe per op).
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("filters=100k/shared=%v", shared), func(b *testing.B) {
			tr := buildBenchTrie(b, 100_000, benchMixes[1], 1024)
			rng := rand.New(rand.NewPCG(9, 9))
			filters := make([]string, 4096)
			for i := range filters {
				filters[i] = benchFilter(rng, 200_000+i, benchMixes[1])
				if shared {
					filters[i] = "$share/g/" + filters[i]
				}
			}
			s := Subscriber{ID: 1 << 40}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f := filters[i%len(filters)]
				i++
				if _, err := tr.Subscribe(f, s); err != nil {
					b.Fatal(err)
				}
				if !tr.Unsubscribe(f, s.ID) {
					b.Fatal("Unsubscribe: not found")
				}
			}
		})
	}
}
