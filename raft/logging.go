// An hclog.Logger that writes to log/slog, so hashicorp/raft logs where the rest of
// Custos does.

package raft

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogLevels maps hclog levels to slog levels; Trace sits below Debug.
var hclogLevels = map[hclog.Level]slog.Level{
	hclog.Trace: slog.LevelDebug - 4,
	hclog.Debug: slog.LevelDebug,
	hclog.Info:  slog.LevelInfo,
	hclog.Warn:  slog.LevelWarn,
	hclog.Error: slog.LevelError,
}

// slogLogger implements hclog.Logger on a *slog.Logger. Levels are filtered by the slog
// handler; SetLevel is ignored.
type slogLogger struct {
	l       *slog.Logger
	name    string
	implied []any
}

func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	return &slogLogger{l: l, name: name}
}

func (s *slogLogger) level(lv hclog.Level) slog.Level {
	if v, ok := hclogLevels[lv]; ok {
		return v
	}
	return slog.LevelInfo
}

func (s *slogLogger) Log(lv hclog.Level, msg string, args ...any) {
	if lv == hclog.Off {
		return
	}
	level := s.level(lv)
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	all := make([]any, 0, 2+len(s.implied)+len(args))
	if s.name != "" {
		all = append(all, "logger", s.name)
	}
	all = append(all, s.implied...)
	all = append(all, args...)
	s.l.Log(context.Background(), level, msg, all...)
}

func (s *slogLogger) Trace(msg string, args ...any) { s.Log(hclog.Trace, msg, args...) }
func (s *slogLogger) Debug(msg string, args ...any) { s.Log(hclog.Debug, msg, args...) }
func (s *slogLogger) Info(msg string, args ...any)  { s.Log(hclog.Info, msg, args...) }
func (s *slogLogger) Warn(msg string, args ...any)  { s.Log(hclog.Warn, msg, args...) }
func (s *slogLogger) Error(msg string, args ...any) { s.Log(hclog.Error, msg, args...) }

func (s *slogLogger) enabled(lv hclog.Level) bool {
	return s.l.Enabled(context.Background(), s.level(lv))
}

func (s *slogLogger) IsTrace() bool { return s.enabled(hclog.Trace) }
func (s *slogLogger) IsDebug() bool { return s.enabled(hclog.Debug) }
func (s *slogLogger) IsInfo() bool  { return s.enabled(hclog.Info) }
func (s *slogLogger) IsWarn() bool  { return s.enabled(hclog.Warn) }
func (s *slogLogger) IsError() bool { return s.enabled(hclog.Error) }

func (s *slogLogger) ImpliedArgs() []any { return s.implied }

func (s *slogLogger) With(args ...any) hclog.Logger {
	c := *s
	c.implied = append(append([]any(nil), s.implied...), args...)
	return &c
}

func (s *slogLogger) Name() string { return s.name }

func (s *slogLogger) Named(name string) hclog.Logger {
	c := *s
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (s *slogLogger) ResetNamed(name string) hclog.Logger {
	c := *s
	c.name = name
	return &c
}

func (s *slogLogger) SetLevel(hclog.Level) {}

func (s *slogLogger) GetLevel() hclog.Level {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if s.enabled(lv) {
			return lv
		}
	}
	return hclog.Off
}

func (s *slogLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(s.StandardWriter(opts), "", 0)
}

func (s *slogLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	lv := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		lv = opts.ForceLevel
	}
	return stdWriter{s: s, level: lv}
}

// stdWriter turns lines written by a standard *log.Logger into log records.
type stdWriter struct {
	s     *slogLogger
	level hclog.Level
}

func (w stdWriter) Write(p []byte) (int, error) {
	w.s.Log(w.level, strings.TrimSpace(string(p)))
	return len(p), nil
}
