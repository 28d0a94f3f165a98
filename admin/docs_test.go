package admin

import (
	"os"
	"strings"
	"testing"
)

// TestDocsListEverything keeps docs/admin.md true: every metric with its
// type, and every API route.
func TestDocsListEverything(t *testing.T) {
	doc, err := os.ReadFile("../docs/admin.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range metricDefs {
		typ := "gauge"
		switch {
		case strings.HasSuffix(d.name, "_total"):
			typ = "counter"
		case d.name == "flockmq_raft_apply_seconds" || d.name == "flockmq_raft_batch_ops":
			typ = "histogram"
		}
		if !strings.Contains(string(doc), "| `"+d.name+"` | "+typ+" |") {
			t.Errorf("docs/admin.md lacks the metric row of %s (%s)", d.name, typ)
		}
	}
	s := newTestServer(t, "")
	for _, route := range s.apiRoutes {
		if !strings.Contains(string(doc), "`"+route+"`") && !strings.Contains(string(doc), "`"+route+"?") {
			t.Errorf("docs/admin.md lacks the route %s", route)
		}
	}
	if len(s.apiRoutes) < 20 {
		t.Fatalf("only %d routes recorded", len(s.apiRoutes))
	}
}
