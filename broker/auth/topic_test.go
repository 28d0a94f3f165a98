package auth

import (
	"strings"
	"testing"
)

// naiveMatch is an independent recursive MQTT matcher over split levels,
// used to check covers and intersects.
func naiveMatch(f, t []string) bool {
	if len(f) > 0 && len(t) > 0 && isDollar(t[0]) && isWild(f[0]) {
		return false
	}
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if i == len(f) {
			return j == len(t)
		}
		switch f[i] {
		case "#":
			return true
		case "+":
			return j < len(t) && rec(i+1, j+1)
		}
		return j < len(t) && f[i] == t[j] && rec(i+1, j+1)
	}
	return rec(0, 0)
}

// universe lists the filters and topics of the brute-force comparison:
// filters of 1 to 3 levels over {a, $s, +, #}, topics of 1 to 4 levels
// over {a, c, $s} ("c" appears in no filter, so it witnesses '+'); a
// filter of n levels is told apart by topics of at most n+1 levels.
func universe() (filters, topics [][]string) {
	var gen func(prefix []string, alphabet []string, max int, out *[][]string)
	gen = func(prefix []string, alphabet []string, max int, out *[][]string) {
		if len(prefix) > 0 {
			*out = append(*out, append([]string(nil), prefix...))
		}
		if len(prefix) == max || (len(prefix) > 0 && prefix[len(prefix)-1] == "#") {
			return
		}
		for _, l := range alphabet {
			gen(append(prefix, l), alphabet, max, out)
		}
	}
	gen(nil, []string{"a", "$s", "+", "#"}, 3, &filters)
	gen(nil, []string{"a", "c", "$s"}, 4, &topics)
	return filters, topics
}

// TestCoversIntersectsBruteForce compares covers and intersects with
// their definitions over a finite universe: covers(r, f) iff every topic f
// matches r matches; intersects(a, b) iff some topic matches both.
func TestCoversIntersectsBruteForce(t *testing.T) {
	filters, topics := universe()
	matches := make([][]bool, len(filters))
	for i, f := range filters {
		matches[i] = make([]bool, len(topics))
		for j, tp := range topics {
			matches[i][j] = naiveMatch(f, tp)
			if got := covers(f, tp); got != matches[i][j] {
				t.Fatalf("covers(%s, topic %s) = %v, naive %v", strings.Join(f, "/"), strings.Join(tp, "/"), got, matches[i][j])
			}
			if got := intersects(f, tp); got != matches[i][j] {
				t.Fatalf("intersects(%s, topic %s) = %v, naive %v", strings.Join(f, "/"), strings.Join(tp, "/"), got, matches[i][j])
			}
		}
	}
	for i, r := range filters {
		for k, f := range filters {
			wantCovers, wantInter := true, false
			for j := range topics {
				if matches[k][j] && !matches[i][j] {
					wantCovers = false
				}
				if matches[k][j] && matches[i][j] {
					wantInter = true
				}
			}
			if got := covers(r, f); got != wantCovers {
				t.Errorf("covers(%s, %s) = %v, want %v", strings.Join(r, "/"), strings.Join(f, "/"), got, wantCovers)
			}
			if got := intersects(r, f); got != wantInter {
				t.Errorf("intersects(%s, %s) = %v, want %v", strings.Join(r, "/"), strings.Join(f, "/"), got, wantInter)
			}
		}
	}
}

// TestTopicMatchAndFilterCovers checks the exported helpers, including
// invalid input.
func TestTopicMatchAndFilterCovers(t *testing.T) {
	match := []struct {
		filter, topic string
		want          bool
	}{
		{"a/+", "a/b", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker/load", true},
		{"a/+", "a/b/c", false},
		{"a//b", "a//b", true},
		{"+", "", false},      // invalid topic
		{"a/#/b", "a", false}, // invalid filter
		{"a/+", "a/+", false}, // a topic name has no wildcard
	}
	for _, m := range match {
		if got := TopicMatch(m.filter, m.topic); got != m.want {
			t.Errorf("TopicMatch(%q, %q) = %v", m.filter, m.topic, got)
		}
	}
	cov := []struct {
		rule, filter string
		want         bool
	}{
		{"a/#", "a/b/+", true},
		{"a/#", "a", true},
		{"a/#", "a/#", true},
		{"a/+", "a/b", true},
		{"a/+", "a/#", false},
		{"a/+", "a/+", true},
		{"a/b", "a/+", false},
		{"#", "$SYS/#", false},
		{"#", "#", true},
		{"+/#", "+/b", true},
		{"$SYS/#", "$SYS/+/x", true},
		{"a+", "a+", false}, // invalid
	}
	for _, c := range cov {
		if got := FilterCovers(c.rule, c.filter); got != c.want {
			t.Errorf("FilterCovers(%q, %q) = %v", c.rule, c.filter, got)
		}
	}
}

// TestFilterProblem checks filter validation.
func TestFilterProblem(t *testing.T) {
	for _, f := range []string{"a", "#", "+", "a/+/b", "a/#", "/", "a//b", "$SYS/#", "a b/c d", "%c/%u"} {
		if msg := filterProblem(f); msg != "" {
			t.Errorf("filterProblem(%q) = %q", f, msg)
		}
	}
	for _, f := range []string{"", "a/#/b", "a#", "a+/b", "#/", "a/b#", "\xff", "a\x00", strings.Repeat("a", 65536)} {
		if filterProblem(f) == "" {
			t.Errorf("filterProblem(%q) accepted", f)
		}
	}
}
