package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	line := progressLine("backup", 512<<20, 1<<30, 256<<20, 2*time.Second, true, 80)
	for _, want := range []string{"backup", "512.0 MiB / 1.0 GiB", " 50% ", "[", "]", "256.0 MiB/s", "ETA 0:02"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
	if len(line) > 79 {
		t.Errorf("%d columns, want at most 79: %q", len(line), line)
	}
	bar := line[strings.Index(line, "[")+1 : strings.Index(line, "]")]
	if full, empty := strings.Count(bar, "#"), strings.Count(bar, "."); full == 0 || empty == 0 || full-empty > 1 || empty-full > 1 {
		t.Errorf("bar of a half-done job: %d done, %d to do", full, empty)
	}
	// Unknown total: no bar, no ETA; narrow terminals are clipped.
	if l := progressLine("restore", 3<<10, 0, 1<<20, 0, false, 80); strings.Contains(l, "[") || strings.Contains(l, "ETA") || !strings.Contains(l, "3.0 KiB") {
		t.Errorf("unknown total: %q", l)
	}
	if l := progressLine("backup", 1, 2, 1, time.Second, true, 20); len(l) > 19 {
		t.Errorf("narrow: %q", l)
	}
	// Done beyond the total (files grew during the backup) stays at 100%.
	if l := progressLine("backup", 3<<30, 1<<30, 1, 0, false, 100); !strings.Contains(l, "100%") {
		t.Errorf("overrun: %q", l)
	}
}

func TestProgressETA(t *testing.T) {
	if d, ok := progressETA(25, 100, 25); !ok || d != 3*time.Second {
		t.Errorf("eta %v %v", d, ok)
	}
	for _, c := range []struct {
		n, total int64
		r        float64
	}{{1, 0, 5}, {1, 10, 0}, {11, 10, 5}} {
		if _, ok := progressETA(c.n, c.total, c.r); ok {
			t.Errorf("%+v: an ETA", c)
		}
	}
	if got := clock(3725 * time.Second); got != "1:02:05" {
		t.Errorf("clock %q", got)
	}
	if got := humanBytes(1536); got != "1.5 KiB" {
		t.Errorf("humanBytes %q", got)
	}
}

// The rate follows the last few seconds, not the average since the start.
func TestProgressRate(t *testing.T) {
	now := time.Unix(0, 0)
	p := &progress{start: now}
	p.rate(now.Add(1*time.Second), 100<<20)
	if r := p.rate(now.Add(2*time.Second), 200<<20); r != 100<<20 {
		t.Errorf("rate %v", r)
	}
	// The pace halves for long enough: the rate follows it.
	var r float64
	for i := 3; i <= 10; i++ {
		r = p.rate(now.Add(time.Duration(i)*time.Second), 200<<20+int64(i-2)*50<<20)
	}
	if r != 50<<20 {
		t.Errorf("rate after slowing down: %v MiB/s", r/(1<<20))
	}
}

func TestProgressModes(t *testing.T) {
	var buf bytes.Buffer
	if m, err := progressModeOf("auto", &buf); err != nil || m != progressLog {
		t.Errorf("auto on a pipe: %q %v", m, err)
	}
	if _, err := progressModeOf("fancy", &buf); err == nil || !strings.Contains(err.Error(), "auto, bar, log or none") {
		t.Errorf("bad mode: %v", err)
	}
	p := startProgress(&buf, progressLog, "backup", 1000, "dataset", "hr")
	p.Done.Add(1000)
	p.Stop(nil)
	p.Stop(nil) // twice is fine
	out := buf.String()
	for _, want := range []string{`msg="backup started"`, "op=backup", "dataset=hr", "total_bytes=1000", `msg="backup finished"`, "bytes=1000"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	p = startProgress(&buf, progressLog, "restore", 10)
	p.Stop(errors.New("secret/file/name.txt: hash mismatch"))
	if out := buf.String(); !strings.Contains(out, "level=ERROR") || strings.Contains(out, "secret") {
		t.Errorf("failure log: %s", out)
	}
	buf.Reset()
	p = startProgress(&buf, progressNone, "restore", 10)
	p.Done.Add(5)
	p.Stop(nil)
	if buf.Len() != 0 {
		t.Errorf("none wrote %q", buf.String())
	}
	// A bar clears its line when it stops, leaving the summary alone.
	buf.Reset()
	p = startProgress(&buf, progressBar, "backup", 10)
	p.report()
	p.Stop(nil)
	if out := buf.String(); !strings.HasSuffix(out, "\r\x1b[K") || !strings.Contains(out, "backup") {
		t.Errorf("bar: %q", out)
	}
}
