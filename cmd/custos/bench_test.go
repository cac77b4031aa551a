package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
)

func TestParseConcurrency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"1,32,256", []int{1, 32, 256}},
		{" 4 , 8 ", []int{4, 8}},
		{"7", []int{7}},
		{"", nil},
		{"none", nil},
		{"  ", nil},
	} {
		got, err := parseConcurrency(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseConcurrency(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0", "-1", "1,,2", "a", "1;2", "4097", "1,x", "1.5"} {
		if got, err := parseConcurrency(bad); err == nil {
			t.Errorf("parseConcurrency(%q) = %v, want an error", bad, got)
		}
	}
}

func TestPercentile(t *testing.T) {
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
	one := []time.Duration{7}
	for _, p := range []float64{0.1, 50, 99, 100} {
		if got := percentile(one, p); got != 7 {
			t.Errorf("percentile(one sample, %v) = %v, want 7", p, got)
		}
	}
	// 1..100: the nearest-rank p-th percentile is p itself.
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{1, 1}, {50, 50}, {90, 90}, {99, 99}, {99.5, 100}, {100, 100}, {0.001, 1}} {
		if got := percentile(hundred, tc.p); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	// Ten samples: p50 is the 5th, p99 the 10th (nearest rank rounds up).
	ten := []time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 1000}
	if got := percentile(ten, 50); got != 50 {
		t.Errorf("p50 of ten = %v, want 50", got)
	}
	if got := percentile(ten, 99); got != 1000 {
		t.Errorf("p99 of ten = %v, want 1000", got)
	}
	if got := percentile(ten, 90); got != 90 {
		t.Errorf("p90 of ten = %v, want 90", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := slices.Clone(tc.in)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median reordered its argument: %v", tc.in)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tcustosd\nVmPeak:\t 2000000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   80000 kB\nRssAnon:\t   50000 kB\nRssFile:\t   29000 kB\nRssShmem:\t 1000 kB\nThreads:\t12\n"
	m, err := parseProcStatus(status)
	want := procMem{RSS: 80000 << 10, HWM: 81234 << 10, RSSAnon: 50000 << 10, RSSFile: 29000 << 10}
	if err != nil || m != want {
		t.Errorf("parseProcStatus = %+v, %v; want %+v", m, err, want)
	}
	// RssAnon and RssFile are optional (old kernels).
	if m, err := parseProcStatus("VmHWM:\t2 kB\nVmRSS:\t1 kB\n"); err != nil || m != (procMem{RSS: 1024, HWM: 2048}) {
		t.Errorf("parseProcStatus without Rss* = %+v, %v", m, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 kB\n", "VmHWM:\t1 kB\nVmRSS:\tx kB\n", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", "VmHWM:\t1 kB\nVmRSS:\t1 kB\nRssAnon:\t1\n"} {
		if _, err := parseProcStatus(bad); err == nil {
			t.Errorf("parseProcStatus(%q): no error", bad)
		}
	}
	// This process has all four lines.
	if m, err := readProcMem(os.Getpid()); err != nil || m.RSS == 0 || m.HWM < m.RSS || m.RSSAnon == 0 || m.RSSFile == 0 {
		t.Errorf("readProcMem(self) = %+v, %v", m, err)
	}
	if _, err := readProcMem(0); err == nil {
		t.Error("readProcMem(0): no error")
	}
}

func TestErrKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&client.APIError{Status: 503, Code: client.CodeNoQuorum}, client.CodeNoQuorum},
		{fmt.Errorf("wrapped: %w", &client.APIError{Status: 502}), "http_502"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{errors.New("connection refused"), "transport"},
	} {
		if got := errKind(tc.err); got != tc.want {
			t.Errorf("errKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestDirUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "snapshots", "1"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"raft.db": 1000, "state.db": 300, "snapshots/1/state.bin": 20, "snapshots/1/meta.json": 5} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, alloc, top := dirUsage(dir)
	if n != 1325 || alloc == 0 {
		t.Errorf("dirUsage = %d bytes, %d allocated; want 1325 and some", n, alloc)
	}
	want := map[string]uint64{"raft.db": 1000, "state.db": 300, "snapshots": 25}
	if fmt.Sprint(top) != fmt.Sprint(want) {
		t.Errorf("top-level usage %v, want %v", top, want)
	}
}
