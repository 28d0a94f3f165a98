package cluster

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// logLimit lets through at most logBurst lines of one kind of event per
// logPeriod, so that a flood of strangers on the cluster's ports cannot fill
// the disk, and says in the next line it lets through how many it held
// back. Callers ask allow before they build the line. Safe for concurrent
// use. (The broker has the same for its clients.)
type logLimit struct {
	start atomic.Int64 // unix nanoseconds: the current period's start
	n     atomic.Int64 // lines let through in it
	held  atomic.Int64 // lines held back since the last one let through
}

const (
	logPeriod = 10 * time.Second
	logBurst  = 10
)

// allow reports whether a line may be written at now (unix nanoseconds),
// and how many were held back before it.
func (r *logLimit) allow(now int64) (held int64, ok bool) {
	if start := r.start.Load(); now-start >= int64(logPeriod) && r.start.CompareAndSwap(start, now) {
		r.n.Store(0)
	}
	if r.n.Add(1) > logBurst {
		r.held.Add(1)
		return 0, false
	}
	return r.held.Swap(0), true
}

// logHeld writes a line that allow let through, with the count it held back
// before it.
func logHeld(l *slog.Logger, level slog.Level, held int64, msg string, args ...any) {
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.Log(context.Background(), level, msg, args...)
}
