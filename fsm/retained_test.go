package fsm

import (
	"math/rand"
	"sort"
	"strings"
	"testing"
)

// naiveMatch is the spec's topic matching, level by level.
func naiveMatch(filter, topic string) bool {
	if strings.HasPrefix(filter, "$share/") {
		return false
	}
	if (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) && strings.HasPrefix(topic, "$") {
		return false // [MQTT-4.7.2-1]
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

func matchTopics(ms []Retained) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Topic
	}
	sort.Strings(out)
	return out
}

func TestRetainedMatchCases(t *testing.T) {
	a := newApplier(t)
	topics := []string{"a", "a/b", "a/b/c", "a/", "/a", "/", "a.b", "a/b.c", "a/bc", "ab", "$SYS/x", "$SYS", "b/$x", "a//c"}
	for _, tp := range topics {
		a.one(&RetainedSet{Topic: tp, Payload: []byte("p"), Now: t0})
	}
	cases := map[string][]string{
		"#":          {"/", "/a", "a", "a.b", "a/", "a//c", "a/b", "a/b.c", "a/b/c", "a/bc", "ab", "b/$x"},
		"a/#":        {"a", "a/", "a//c", "a/b", "a/b.c", "a/b/c", "a/bc"},
		"a/+":        {"a/", "a/b", "a/b.c", "a/bc"},
		"a/+/c":      {"a//c", "a/b/c"},
		"+":          {"a", "a.b", "ab"},
		"+/+":        {"/", "/a", "a/", "a/b", "a/b.c", "a/bc", "b/$x"},
		"/+":         {"/", "/a"},
		"+/#":        {"/", "/a", "a", "a.b", "a/", "a//c", "a/b", "a/b.c", "a/b/c", "a/bc", "ab", "b/$x"},
		"$SYS/#":     {"$SYS", "$SYS/x"},
		"$SYS/+":     {"$SYS/x"},
		"+/x":        nil,
		"a/b":        {"a/b"},
		"a/b/#":      {"a/b", "a/b/c"},
		"nothing":    nil,
		"$share/g/#": nil,
		"":           nil,
	}
	for f, want := range cases {
		got := matchTopics(a.f.RetainedMatch(f))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("RetainedMatch(%q) = %q, want %q", f, got, want)
		}
	}
}

// TestRetainedMatchRandom compares RetainedMatch with naiveMatch on random
// topic sets and filters drawn from a small alphabet (so that levels share
// prefixes and sort next to '/').
func TestRetainedMatchRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabet := []string{"", "a", "b", "ab", "a.", "a0", "$s", "ba", "\x01", "~"}
	level := func() string { return alphabet[rng.Intn(len(alphabet))] }
	topic := func() string {
		n := 1 + rng.Intn(4)
		ls := make([]string, n)
		for i := range ls {
			ls[i] = level()
		}
		return strings.Join(ls, "/")
	}
	filter := func() string {
		n := 1 + rng.Intn(4)
		ls := make([]string, n)
		for i := range ls {
			switch rng.Intn(4) {
			case 0:
				ls[i] = "+"
			default:
				ls[i] = level()
			}
		}
		if rng.Intn(3) == 0 {
			ls[n-1] = "#"
		}
		return strings.Join(ls, "/")
	}
	for round := 0; round < 30; round++ {
		a := newApplier(t)
		var all []string
		seen := map[string]bool{}
		for i := 0; i < 200; i++ {
			tp := topic()
			if !seen[tp] && tp != "" {
				seen[tp] = true
				all = append(all, tp)
			}
			a.one(&RetainedSet{Topic: tp, Payload: []byte("p"), Now: t0})
		}
		for i := 0; i < 200; i++ {
			f := filter()
			var want []string
			for _, tp := range all {
				if naiveMatch(f, tp) {
					want = append(want, tp)
				}
			}
			sort.Strings(want)
			got := matchTopics(a.f.RetainedMatch(f))
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("RetainedMatch(%q) = %q, want %q", f, got, want)
			}
		}
	}
}

func TestRetainedWalkStops(t *testing.T) {
	a := newApplier(t)
	for _, tp := range []string{"a/1", "a/2", "a/3", "a/4/x", "a/5/x"} {
		a.one(&RetainedSet{Topic: tp, Payload: []byte("p"), Now: t0})
	}
	for _, f := range []string{"a/#", "a/+", "+/+/x", "#"} {
		n := 0
		a.f.RetainedWalk(f, func(*Retained) bool { n++; return n < 2 })
		if n != 2 {
			t.Errorf("RetainedWalk(%q) called fn %d times after it returned false", f, n)
		}
	}
}
