package main

// Progress of the long backup commands: a bar (bytes, rate, ETA) redrawn on
// a terminal, structured log lines (logfmt, log/slog) otherwise, so cron
// and systemd journals get a line every progressLogEvery instead of
// carriage returns.

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Progress modes (the --progress flag).
const (
	progressAuto = "auto" // bar on a terminal, log otherwise
	progressBar  = "bar"
	progressLog  = "log"
	progressNone = "none"
)

const (
	progressBarEvery = 200 * time.Millisecond
	progressLogEvery = 10 * time.Second
	// progressWindow is how far back the rate looks: recent enough to
	// follow a change of pace, long enough not to jitter.
	progressWindow = 3 * time.Second
)

// progressModeOf resolves mode ("" is auto) for the stream w.
func progressModeOf(mode string, w io.Writer) (string, error) {
	switch mode {
	case "", progressAuto:
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return progressBar, nil
		}
		return progressLog, nil
	case progressBar, progressLog, progressNone:
		return mode, nil
	}
	return "", usagef("--progress %q: want auto, bar, log or none", mode)
}

// progress reports the bytes a job has done (Done, which the job adds to)
// out of total (0 if unknown) until Stop.
type progress struct {
	Done atomic.Int64

	op    string // "backup", "restore", …
	total int64
	mode  string
	w     io.Writer
	log   *slog.Logger
	width int
	every time.Duration
	now   func() time.Time
	start time.Time

	mu      sync.Mutex
	samples []progressSample
	stop    chan struct{}
	stopped chan struct{}
}

type progressSample struct {
	t time.Time
	n int64
}

// startProgress starts reporting op on w in mode (as progressModeOf
// resolved it); attrs are logged with every line in log mode.
func startProgress(w io.Writer, mode, op string, total int64, attrs ...any) *progress {
	p := &progress{op: op, total: total, mode: mode, w: w, now: time.Now, width: 80,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	p.start = p.now()
	switch mode {
	case progressBar:
		p.every = progressBarEvery
		if f, ok := w.(*os.File); ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				p.width = cols
			}
		}
	case progressLog:
		p.every = progressLogEvery
		p.log = slog.New(slog.NewTextHandler(w, nil)).With(append([]any{"op", op}, attrs...)...)
		p.log.Info(op+" started", "total_bytes", total)
	default:
		close(p.stopped)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.stopped)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.report()
		}
	}
}

// rate is the bytes per second over the last progressWindow.
func (p *progress) rate(now time.Time, n int64) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.samples = append(p.samples, progressSample{now, n})
	i := 0
	for i < len(p.samples)-2 && now.Sub(p.samples[i+1].t) >= progressWindow {
		i++
	}
	p.samples = p.samples[i:]
	first := progressSample{p.start, 0}
	if now.Sub(p.start) > progressWindow {
		first = p.samples[0]
	}
	dt := now.Sub(first.t).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(n-first.n) / dt
}

func (p *progress) report() {
	now := p.now()
	n := p.Done.Load()
	r := p.rate(now, n)
	eta, etaOK := progressETA(n, p.total, r)
	switch p.mode {
	case progressBar:
		fmt.Fprint(p.w, "\r\x1b[K"+progressLine(p.op, n, p.total, r, eta, etaOK, p.width))
	case progressLog:
		args := []any{"bytes", n, "total_bytes", p.total, "mib_per_s", round1(r / (1 << 20))}
		if etaOK {
			args = append(args, "eta_s", int64(eta.Seconds()+0.5))
		}
		p.log.Info(p.op+" progress", args...)
	}
}

// Stop ends the reports: the bar is cleared (the command prints its
// summary), a log gets a final line; err, if any, is logged as the outcome.
func (p *progress) Stop(err error) {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.stopped
	elapsed := p.now().Sub(p.start)
	n := p.Done.Load()
	switch p.mode {
	case progressBar:
		fmt.Fprint(p.w, "\r\x1b[K")
	case progressLog:
		r := 0.0
		if elapsed > 0 {
			r = float64(n) / elapsed.Seconds()
		}
		args := []any{"bytes", n, "seconds", round1(elapsed.Seconds()), "mib_per_s", round1(r / (1 << 20))}
		if err != nil {
			// The kind of failure only: the command reports the error.
			p.log.Error(p.op+" failed", args...)
			return
		}
		p.log.Info(p.op+" finished", args...)
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// progressETA is the time left at rate r, if it can be told.
func progressETA(n, total int64, r float64) (time.Duration, bool) {
	if total <= 0 || r <= 0 || n > total {
		return 0, false
	}
	return time.Duration(float64(total-n) / r * float64(time.Second)), true
}

// progressLine renders one bar line of at most width columns:
// "backup  412.3 MiB / 1.0 GiB  40% [####......]  287.1 MiB/s  ETA 0:02".
func progressLine(op string, n, total int64, r float64, eta time.Duration, etaOK bool, width int) string {
	// Fixed-width numbers, so the bar does not jitter as they grow.
	head := fmt.Sprintf("%-7s %10s", op, humanBytes(n))
	tail := fmt.Sprintf("  %10s/s", humanBytes(int64(r)))
	if etaOK {
		tail += "  ETA " + clock(eta)
	}
	if total <= 0 {
		return clip(head+tail, width)
	}
	frac := float64(n) / float64(total)
	frac = min(max(frac, 0), 1)
	head += fmt.Sprintf(" / %s %3d%% ", humanBytes(total), int(frac*100))
	bar := width - 1 - len(head) - len(tail) - 2
	if bar < 10 {
		return clip(head+tail, width)
	}
	full := int(frac * float64(bar))
	return head + "[" + strings.Repeat("#", full) + strings.Repeat(".", bar-full) + "]" + tail
}

func clip(s string, width int) string {
	if width > 1 && len(s) > width-1 {
		return s[:width-1]
	}
	return s
}

// clock formats d as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// humanBytes formats n in binary units: "512 B", "3.2 KiB", "1.0 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/unit, 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u])
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}
