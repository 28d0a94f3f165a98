package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter is the hclog.Logger that raft, its transport and its snapshot
// store log through: each line becomes a record of the node's *slog.Logger,
// at the slog level matching its hclog level, so the node's handler (and its
// configured level) decides what is shown. The logger's name goes into the
// "logger" attribute. Safe for concurrent use.
type hclogAdapter struct {
	base slog.Handler // the node's
	h    slog.Handler // base with the name and the implied args
	name string
	args []any // implied args, as given to With
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// newHCLog returns an hclog.Logger named name that writes to l.
func newHCLog(l *slog.Logger, name string) hclog.Logger {
	return newHCLogAdapter(l.Handler(), name, nil)
}

func newHCLogAdapter(base slog.Handler, name string, args []any) *hclogAdapter {
	l := slog.New(base)
	if name != "" {
		l = l.With("logger", name)
	}
	if len(args) > 0 {
		l = l.With(hclogArgs(args)...)
	}
	return &hclogAdapter{base: base, h: l.Handler(), name: name, args: args}
}

// slogLevel maps an hclog level to slog's; Trace is below Debug. ok is false
// for Off.
func slogLevel(l hclog.Level) (lv slog.Level, ok bool) {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4, true
	case hclog.Debug:
		return slog.LevelDebug, true
	case hclog.NoLevel, hclog.Info:
		return slog.LevelInfo, true
	case hclog.Warn:
		return slog.LevelWarn, true
	case hclog.Error:
		return slog.LevelError, true
	}
	return 0, false
}

// hclogArgs turns hclog's key/value pairs into slog's: an hclog.Format value
// (hclog.Fmt) is formatted. args is not modified.
func hclogArgs(args []any) []any {
	out, copied := args, false
	for i, v := range args {
		f, ok := v.(hclog.Format)
		if !ok || len(f) == 0 {
			continue
		}
		if format, ok := f[0].(string); ok {
			if !copied {
				out, copied = append([]any(nil), args...), true
			}
			out[i] = fmt.Sprintf(format, f[1:]...)
		}
	}
	return out
}

// emit writes one record; it must be called directly by the method raft
// called, so that the record's source is raft's line.
func (a *hclogAdapter) emit(level hclog.Level, msg string, args []any) {
	lv, ok := slogLevel(level)
	ctx := context.Background()
	if !ok || !a.h.Enabled(ctx, lv) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, emit, the Logger method
	r := slog.NewRecord(time.Now(), lv, msg, pcs[0])
	r.Add(hclogArgs(args)...)
	_ = a.h.Handle(ctx, r)
}

func (a *hclogAdapter) enabled(level hclog.Level) bool {
	lv, ok := slogLevel(level)
	return ok && a.h.Enabled(context.Background(), lv)
}

// Log implements hclog.Logger.
func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) { a.emit(level, msg, args) }

// Trace implements hclog.Logger.
func (a *hclogAdapter) Trace(msg string, args ...any) { a.emit(hclog.Trace, msg, args) }

// Debug implements hclog.Logger.
func (a *hclogAdapter) Debug(msg string, args ...any) { a.emit(hclog.Debug, msg, args) }

// Info implements hclog.Logger.
func (a *hclogAdapter) Info(msg string, args ...any) { a.emit(hclog.Info, msg, args) }

// Warn implements hclog.Logger.
func (a *hclogAdapter) Warn(msg string, args ...any) { a.emit(hclog.Warn, msg, args) }

// Error implements hclog.Logger.
func (a *hclogAdapter) Error(msg string, args ...any) { a.emit(hclog.Error, msg, args) }

// IsTrace implements hclog.Logger.
func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }

// IsDebug implements hclog.Logger.
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }

// IsInfo implements hclog.Logger.
func (a *hclogAdapter) IsInfo() bool { return a.enabled(hclog.Info) }

// IsWarn implements hclog.Logger.
func (a *hclogAdapter) IsWarn() bool { return a.enabled(hclog.Warn) }

// IsError implements hclog.Logger.
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (a *hclogAdapter) ImpliedArgs() []any { return a.args }

// With implements hclog.Logger.
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return newHCLogAdapter(a.base, a.name, append(append([]any(nil), a.args...), args...))
}

// Name implements hclog.Logger.
func (a *hclogAdapter) Name() string { return a.name }

// Named implements hclog.Logger: the name is appended to the current one.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return newHCLogAdapter(a.base, name, a.args)
}

// ResetNamed implements hclog.Logger.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return newHCLogAdapter(a.base, name, a.args)
}

// SetLevel implements hclog.Logger. It does nothing: the slog handler's
// level decides.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel implements hclog.Logger: the lowest level the handler lets
// through.
func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

// StandardLogger implements hclog.Logger.
func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger: each write is one line, at
// opts.ForceLevel, or with InferLevels at the level its [LEVEL] prefix
// names, or else at Info.
func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return stdlogWriter{a: a, opts: *opts}
}

type stdlogWriter struct {
	a    *hclogAdapter
	opts hclog.StandardLoggerOptions
}

func (w stdlogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, " \t\n"))
	level := hclog.Info
	if w.opts.InferLevels || w.opts.ForceLevel != hclog.NoLevel {
		for _, pl := range []struct {
			prefix string
			level  hclog.Level
		}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
			{"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error}} {
			if rest, ok := strings.CutPrefix(line, pl.prefix); ok {
				line, level = strings.TrimSpace(rest), pl.level
				break
			}
		}
	}
	if w.opts.ForceLevel != hclog.NoLevel {
		level = w.opts.ForceLevel
	}
	w.a.emit(level, line, nil)
	return len(p), nil
}
