package daemon

import (
	"context"
	"io"
	"log/slog"
)

// newHandler writes every record as text to the plugin log (GETLOG reads
// it) and, when stderr is set, to stderr as text or JSON (journald adds the
// time, but a terminal wants it too).
func newHandler(log io.Writer, stderr io.Writer, jsonLogs bool) slog.Handler {
	opts := &slog.HandlerOptions{ReplaceAttr: utcTime}
	hs := []slog.Handler{slog.NewTextHandler(log, opts)}
	if stderr != nil {
		if jsonLogs {
			hs = append(hs, slog.NewJSONHandler(stderr, opts))
		} else {
			hs = append(hs, slog.NewTextHandler(stderr, opts))
		}
	}
	return fanout(hs)
}

// utcTime writes a record's time in UTC (RFC 3339, as every time backupsync
// shows), whatever the machine's zone.
func utcTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (f fanout) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
