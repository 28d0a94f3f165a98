package broker

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimit lets through at most logBurst lines of one kind of event per
// logPeriod, so that a flood of bad clients cannot fill the disk, and says in
// the next line it lets through how many it held back. Safe for concurrent
// use.
type logLimit struct {
	mu    sync.Mutex
	start time.Time // of the current period
	n     int       // lines let through in it
	held  int       // lines held back since the last one let through
}

const (
	logPeriod = 10 * time.Second
	logBurst  = 10
)

// log writes msg with args at level unless the kind's budget for the period
// is spent.
func (r *logLimit) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.start) >= logPeriod {
		r.start, r.n = now, 0
	}
	if r.n >= logBurst {
		r.held++
		r.mu.Unlock()
		return
	}
	r.n++
	held := r.held
	r.held = 0
	r.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.Log(context.Background(), level, msg, args...)
}

// abuseLogs are the rate limits of the log lines about misbehaving clients
// and the broker's answers to them, one per kind of event.
type abuseLogs struct {
	panic, malformed, connectTimeout, tooLarge, slowConsumer, paused, dropped logLimit
}
