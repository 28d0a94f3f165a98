package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logBuffer collects a text handler's output; safe for raft's goroutines
// and the test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// hasLine reports whether one line holds every part.
func (l *logBuffer) hasLine(parts ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func captureLog(level slog.Level) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level})), buf
}

// TestRaftLogsToSlog: raft's own lines, its transport's and its snapshot
// store's reach the node's slog logger, named and at their levels.
func TestRaftLogsToSlog(t *testing.T) {
	log, buf := captureLog(slog.LevelInfo)
	r, err := OpenRaft(RaftConfig{NodeID: "n1", Dir: t.TempDir(), Bind: "127.0.0.1:0", Bootstrap: true, Fast: true, Logger: log}, &sumFSM{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.WaitLeader(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "raft's leader line", func() bool {
		return buf.hasLine("level=INFO", `msg="entering leader state"`, "logger=raft")
	})
	if err := r.Apply(cmd(1), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the snapshot store's line", func() bool {
		return buf.hasLine("level=INFO", `msg="creating new snapshot"`, "logger=raft.snapshot")
	})
	// A raft stream with an unknown RPC type: the transport logs an error.
	c, err := dial(string(r.Addr()), streamRaft, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0xff}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the transport's error line", func() bool {
		return buf.hasLine("level=ERROR", `msg="failed to decode incoming command"`, "logger=raft.net", "unknown rpc type 255")
	})
	if buf.hasLine("level=DEBUG") {
		t.Fatalf("debug lines at level info:\n%s", buf)
	}
}

// TestHCLogAdapterLevels: hclog levels map to slog's one to one, the
// handler's level decides, and hclog's formatting and sub-loggers carry
// over.
func TestHCLogAdapterLevels(t *testing.T) {
	log, buf := captureLog(slog.LevelWarn)
	h := newHCLog(log, "raft")
	if h.IsInfo() || !h.IsWarn() || !h.IsError() || h.GetLevel() != hclog.Warn {
		t.Fatalf("at warn: IsInfo %v IsWarn %v IsError %v GetLevel %v", h.IsInfo(), h.IsWarn(), h.IsError(), h.GetLevel())
	}
	h.Info("hidden")
	h.Warn("shown", "n", 1)
	h.Named("net").With("peer", "b").Error("failed", "size", hclog.Fmt("%d/%d", 3, 4))
	h.Log(hclog.Off, "off")
	if strings.Contains(buf.String(), "hidden") || strings.Contains(buf.String(), "off") {
		t.Fatalf("line below the level:\n%s", buf)
	}
	if !buf.hasLine("level=WARN", "msg=shown", "logger=raft", "n=1") {
		t.Fatalf("no warn line:\n%s", buf)
	}
	if !buf.hasLine("level=ERROR", "msg=failed", "logger=raft.net", "peer=b", "size=3/4") {
		t.Fatalf("no error line:\n%s", buf)
	}

	log, buf = captureLog(slog.LevelDebug - 4)
	h = newHCLog(log, "raft")
	if !h.IsTrace() || h.GetLevel() != hclog.Trace {
		t.Fatalf("at trace: IsTrace %v GetLevel %v", h.IsTrace(), h.GetLevel())
	}
	h.Trace("tiny")
	h.Debug("small")
	h.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[WARN] from stdlog")
	for _, want := range [][]string{{"level=DEBUG-4", "msg=tiny"}, {"level=DEBUG", "msg=small"}, {"level=WARN", `msg="from stdlog"`}} {
		if !buf.hasLine(want...) {
			t.Fatalf("no line with %q:\n%s", want, buf)
		}
	}
}
