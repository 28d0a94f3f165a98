package bench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if a Runner left goroutines behind: gnet loops, the
// driver or dialers.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leak := waitNoLeak(5 * time.Second); leak != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", leak)
			code = 1
		}
	}
	os.Exit(code)
}

func waitNoLeak(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for {
		leak := leakedStacks()
		if leak == "" || time.Now().After(deadline) {
			return leak
		}
		<-tk.C
	}
}

func leakedStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestMain") || strings.Contains(g, "leakedStacks") {
			continue
		}
		if strings.Contains(g, "flockmq/flockmq/bench.") || strings.Contains(g, "panjf2000/gnet") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
