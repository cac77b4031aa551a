package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
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
		{&client.APIError{Status: 503, Code: errcode.NoQuorum}, errcode.NoQuorum},
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

// The key-op phase against the in-memory cluster: its shape, not its speed.
func TestKeyOpsPhase(t *testing.T) {
	h := newKEKHarness(t)
	h.cli(0, "operator", "init", "--env", h.opEnv, "--officers", strings.Join(h.pubs, ","), "--quorum", "2")
	h.execute("alice", "bob", "kek.create", "--kek", "bench")
	cl, err := (&apiFlags{env: h.writeEnv("agent-1", identity.RoleAgent, nil)}).client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	self := func() []nodeMemory {
		m, err := readProcMem(os.Getpid())
		if err != nil {
			t.Error(err)
		}
		return []nodeMemory{{ID: "self", PID: os.Getpid(), procMem: m}}
	}
	kb := &keyOpsBench{clients: []*client.Client{cl}, kek: "bench", context: map[string]string{"dataset": "bench"},
		o:    keyOpsOptions{levels: []int{1, 2}, duration: 300 * time.Millisecond, warmup: 50 * time.Millisecond, batchSize: 10, batchConc: 2, timeout: 10 * time.Second},
		logf: t.Logf, memory: self, cpu: func() map[string]float64 {
			s, err := readProcCPU(os.Getpid())
			if err != nil {
				t.Error(err)
			}
			return map[string]float64{loadProcess: s}
		}}
	res, err := kb.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, p := range res.Points {
		ops = append(ops, fmt.Sprintf("%s/%d", p.Op, p.Concurrency))
		if _, ok := p.CPU[loadProcess]; p.OK == 0 || p.Errors != 0 || p.Samples == 0 || p.RSS["self"] == 0 || p.RSSAnon["self"] == 0 || !ok {
			t.Errorf("%s at %d: %+v", p.Op, p.Concurrency, p)
		}
		want := p.OK
		if p.Op == opUnwrapBatch {
			want = p.OK * 10
		}
		if p.Keys != want {
			t.Errorf("%s at %d: %d data keys for %d requests", p.Op, p.Concurrency, p.Keys, p.OK)
		}
	}
	if got := strings.Join(ops, " "); got != "unwrap/1 unwrap/2 wrap/1 wrap/2 datakey/1 datakey/2 unwrap_batch/2" {
		t.Errorf("points %s", got)
	}
	if res.KEKVersion != 1 || len(res.NodesBefore) != 1 || len(res.NodesAfter) != 1 || len(res.Targets) != 2 {
		t.Errorf("result %+v", res)
	}
	var b strings.Builder
	printKeyOps(&b, res)
	wantAll(t, "report", b.String(), `Key operations: KEK "bench" v1`, "RSS self", "ANON self", "CPU load", "unwrap_batch", "single unwrap at concurrency 32", "not measured", "batch unwrap of 10 at concurrency 2")

	path := filepath.Join(t.TempDir(), "results", "keyops.json")
	if err := writeKeyOpsResults(path, &benchReport{Cluster: "test", Nodes: 3, KeyOps: res}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back keyOpsFile
	if err := json.Unmarshal(raw, &back); err != nil || back.KeyOps == nil || len(back.KeyOps.Points) != len(res.Points) || back.Cluster != "test" {
		t.Fatalf("results file: %v\n%s", err, raw)
	}
	for _, k := range []string{`"ops_per_s"`, `"data_keys_per_s"`, `"p99_ms"`, `"rss_bytes"`, `"targets"`} {
		if !strings.Contains(string(raw), k) {
			t.Errorf("results file lacks %s", k)
		}
	}
}

func TestKeyOpTargets(t *testing.T) {
	points := []keyOpPoint{
		{Op: opUnwrap, Concurrency: 32, PerSecond: 4100, P99Ms: 25},
		{Op: opUnwrapBatch, Concurrency: 8, BatchSize: 100, KeysPerSecond: 14000},
	}
	ts := keyOpTargets(points)
	if len(ts) != 2 || !ts[0].Met || ts[1].Met || ts[0].Got != "4100/s, p99 25.0 ms" || ts[1].Got != "14000 data keys/s" {
		t.Errorf("targets %+v", ts)
	}
	points[0].P99Ms = 31
	if keyOpTargets(points)[0].Met {
		t.Error("p99 31 ms meets the ≤ 30 ms target")
	}
	points[0].P99Ms, points[0].Errors = 25, 1
	if keyOpTargets(points)[0].Met {
		t.Error("a point with errors meets its target")
	}
	var b strings.Builder
	printKeyOps(&b, &keyOpsResult{KEK: "demo", KEKVersion: 1, Points: points, Targets: keyOpTargets(points[1:])})
	wantAll(t, "report", b.String(), "not measured", "NOT MET", "14000 data keys/s")
	if strings.Contains(b.String(), "RSS") {
		t.Errorf("RSS columns without RSS figures:\n%s", b.String())
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50 ticks.
	line := "1234 (custos d) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0\n"
	if got, err := parseProcStat(line); err != nil || got != 3 {
		t.Errorf("parseProcStat = %v, %v; want 3 s", got, err)
	}
	for _, bad := range []string{"", "1234 (x) S 1 2", "1234 (x) S 1 1 1 0 -1 0 0 0 0 0 u 50"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	if _, err := readProcCPU(os.Getpid()); err != nil {
		t.Errorf("readProcCPU(self): %v", err)
	}
}
