package broker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// LogLimit lets through at most logBurst lines of one kind of event per
// logPeriod, so that a flood of bad clients cannot fill the disk, and says in
// the next line it lets through how many it held back. Callers ask Allow
// before they build the line, so that an event held back (a dropped message
// at hundreds of thousands a second) costs a few atomic operations. Safe for
// concurrent use. The cluster uses it for strangers on its ports.
type LogLimit struct {
	start atomic.Int64 // unix nanoseconds: the current period's start
	n     atomic.Int64 // lines let through in it
	held  atomic.Int64 // lines held back since the last one let through
}

const (
	logPeriod = 10 * time.Second
	logBurst  = 10
)

// Allow reports whether a line may be written at now (unix nanoseconds),
// and how many were held back before it.
func (r *LogLimit) Allow(now int64) (held int64, ok bool) {
	if start := r.start.Load(); now-start >= int64(logPeriod) && r.start.CompareAndSwap(start, now) {
		r.n.Store(0)
	}
	if r.n.Add(1) > logBurst {
		r.held.Add(1)
		return 0, false
	}
	return r.held.Swap(0), true
}

// LogHeld writes a line that Allow let through, with the count it held back
// before it.
func LogHeld(l *slog.Logger, level slog.Level, held int64, msg string, args ...any) {
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.Log(context.Background(), level, msg, args...)
}

// abuseLogs are the rate limits of the log lines about misbehaving clients
// and the broker's answers to them, one per kind of event.
type abuseLogs struct {
	panic, malformed, connectTimeout, tooLarge, slowConsumer, paused, dropped LogLimit
}
