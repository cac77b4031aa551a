package main

// The key-operation phase of `custos dev bench` (--keyops): agents' wrap,
// unwrap, datakey and batch unwrap against every node of a running dev
// cluster, from this separate load process, through the real path (mutual
// TLS, HTTP API, policy, share release and activation, group commit, raft
// with fsync). Each point is a closed loop of n workers for a fixed time;
// worker i talks to node i mod N first (each node serves key operations),
// on keep-alive connections.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
)

// Key-op phase defaults and bounds.
const (
	keyOpsPool        = 256 // wrapped keys the unwrap points cycle through
	defaultKeyOpsDur  = 20 * time.Second
	defaultKeyOpsConc = "1,8,32"
	defaultBatchSize  = 100
	defaultBatchConc  = 8
	defaultResults    = "bench-results/keyops.json"
)

// Targets printed beside the figures (never asserted by tests).
const (
	targetUnwrapConc   = 32
	targetUnwrapPerSec = 4000
	targetUnwrapP99Ms  = 30
	targetBatchKeysSec = 15000
)

// Key-op names in the report.
const (
	opUnwrap      = "unwrap"
	opWrap        = "wrap"
	opDataKey     = "datakey"
	opUnwrapBatch = "unwrap_batch"
)

type keyOpsOptions struct {
	enabled   bool
	levels    []int
	duration  time.Duration
	warmup    time.Duration
	batchSize int
	batchConc int
	timeout   time.Duration
	results   string // JSON file of the phase's results; "" for none
}

// Report shapes of the phase, as --json and the results file give them.
type (
	keyOpsResult struct {
		KEK         string            `json:"kek"`
		KEKVersion  uint32            `json:"kek_version"`
		Context     map[string]string `json:"context"`
		Endpoints   []string          `json:"endpoints"`
		Warmup      float64           `json:"warmup_seconds"`
		Points      []keyOpPoint      `json:"points"`
		Targets     []keyOpTarget     `json:"targets"`
		NodesBefore []nodeMemory      `json:"nodes_before,omitempty"` // each node's memory before the first point
		NodesAfter  []nodeMemory      `json:"nodes_after,omitempty"`  // and after the last (VmHWM: the peak)
	}
	keyOpPoint struct {
		Op            string            `json:"op"` // unwrap, wrap, datakey, unwrap_batch
		Concurrency   int               `json:"concurrency"`
		BatchSize     int               `json:"batch_size,omitempty"`
		Seconds       float64           `json:"seconds"`
		OK            int               `json:"ok"`        // requests answered without error that ended in the measured window
		Keys          int               `json:"data_keys"` // data keys those requests handled (batch: items without error)
		Errors        int               `json:"errors"`    // failed requests and failed batch items
		ErrorKinds    map[string]int    `json:"error_kinds,omitempty"`
		ErrorSample   string            `json:"error_sample,omitempty"`
		PerSecond     float64           `json:"ops_per_s"` // requests
		KeysPerSecond float64           `json:"data_keys_per_s"`
		MeanMs        float64           `json:"mean_ms"` // latencies of requests sent in the window
		P50Ms         float64           `json:"p50_ms"`
		P90Ms         float64           `json:"p90_ms"`
		P99Ms         float64           `json:"p99_ms"`
		MaxMs         float64           `json:"max_ms"`
		Samples       int               `json:"samples"`
		RSS           map[string]uint64 `json:"rss_bytes,omitempty"`      // each node's VmRSS at the end of the point, by node id
		RSSAnon       map[string]uint64 `json:"rss_anon_bytes,omitempty"` // and its RssAnon (heap, stacks; VmRSS also counts the mmapped database)
		// CPU is the CPU time each node, and this load process ("load"),
		// used during the point (warmup included) over its wall time: cores busy.
		CPU map[string]float64 `json:"cpu_cores,omitempty"`
	}
	keyOpTarget struct {
		What   string `json:"what"`
		Target string `json:"target"`
		Got    string `json:"got"`
		Met    bool   `json:"met"`
	}
	nodeMemory struct {
		ID  string `json:"id"`
		PID int    `json:"pid"`
		procMem
		Error string `json:"error,omitempty"`
	}
	// keyOpsFile is what --results holds.
	keyOpsFile struct {
		Cluster string        `json:"cluster"`
		Nodes   int           `json:"nodes"`
		Host    hostInfo      `json:"host"`
		Started time.Time     `json:"started"`
		KeyOps  *keyOpsResult `json:"key_ops"`
	}
)

// keyOpsBench drives key operations through clients, one per node.
type keyOpsBench struct {
	clients []*client.Client
	kek     string
	context map[string]string
	o       keyOpsOptions
	logf    func(format string, a ...any)
	// memory reads each node's memory; nil where nodes are not processes.
	memory func() []nodeMemory
	// cpu reads the CPU seconds used so far by each node and by this
	// process ("load"); nil to skip.
	cpu func() map[string]float64
}

// keyOpsPhase creates (or reuses) the demo KEK and runs the key-op points
// against every node of the dev cluster with the agent's certificate.
func (b *bench) keyOpsPhase(ctx context.Context) (*keyOpsResult, error) {
	cer, err := b.c.CreateDemoKEK(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo KEK: %w", err)
	}
	if cer.ID != "" {
		b.logf("keyops: created KEK %q by ceremony %s (executed in log entry %d)", devcluster.DemoKEK, cer.ID, cer.Closed)
	} else {
		b.logf("keyops: KEK %q exists: reusing it", devcluster.DemoKEK)
	}
	conns := slices.Max(append(slices.Clone(b.o.keyOps.levels), b.o.keyOps.batchConc))
	eps := b.c.Endpoints()
	var clients []*client.Client
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for i := range eps {
		// Node i first, the others to fail over to.
		rot := append(slices.Clone(eps[i:]), eps[:i]...)
		cl, err := client.New(client.Config{Endpoints: rot, TLSFiles: b.c.ClientTLS(identity.RoleAgent),
			Timeout: b.o.keyOps.timeout, MaxIdleConnsPerHost: conns})
		if err != nil {
			return nil, err
		}
		clients = append(clients, cl)
	}
	kb := &keyOpsBench{clients: clients, kek: devcluster.DemoKEK, context: map[string]string{"dataset": "bench"},
		o: b.o.keyOps, logf: b.logf, memory: b.nodeMemory, cpu: b.cpuSeconds}
	return kb.run(ctx)
}

// cpuSeconds reads the CPU time every node and this process have used.
func (b *bench) cpuSeconds() map[string]float64 {
	out := map[string]float64{}
	for _, n := range b.c.Nodes {
		if s, err := readProcCPU(n.PID); err == nil {
			out[n.ID] = s
		}
	}
	if s, err := readProcCPU(os.Getpid()); err == nil {
		out[loadProcess] = s
	}
	return out
}

// loadProcess names this process in the CPU figures.
const loadProcess = "load"

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// readProcCPU returns the user+system CPU seconds pid has used.
func readProcCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("not running")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(raw))
}

// parseProcStat reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line, in seconds.
func parseProcStat(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	var ticks uint64
	for _, x := range f[11:13] {
		n, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return float64(ticks) / clockTicks, nil
}

// nodeMemory reads every node's memory from /proc.
func (b *bench) nodeMemory() []nodeMemory {
	var out []nodeMemory
	for _, n := range b.c.Nodes {
		m, err := readProcMem(n.PID)
		nm := nodeMemory{ID: n.ID, PID: n.PID, procMem: m}
		if err != nil {
			nm.Error = err.Error()
		}
		out = append(out, nm)
	}
	return out
}

func (kb *keyOpsBench) run(ctx context.Context) (*keyOpsResult, error) {
	res := &keyOpsResult{KEK: kb.kek, Context: kb.context, Warmup: kb.o.warmup.Seconds()}
	for _, cl := range kb.clients {
		res.Endpoints = append(res.Endpoints, cl.Endpoints()[0])
	}
	if kb.memory != nil {
		res.NodesBefore = kb.memory()
	}
	// The wrapped keys the unwrap points open, in one batch.
	items := make([]client.WrapItem, keyOpsPool)
	for i := range items {
		items[i] = client.WrapItem{Plaintext: make([]byte, 32), Context: kb.context}
		rand.Read(items[i].Plaintext)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	wb, err := kb.clients[0].WrapBatch(wctx, kb.kek, items)
	cancel()
	if err != nil {
		return res, fmt.Errorf("wrapping %d data keys: %w", keyOpsPool, err)
	}
	pool := make([][]byte, 0, keyOpsPool)
	for _, r := range wb.Results {
		if err := r.Err(); err != nil {
			return res, fmt.Errorf("wrapping the unwrap pool: %w", err)
		}
		pool = append(pool, r.Wrapped)
		res.KEKVersion = r.KEKVersion
	}
	if len(pool) == 0 {
		return res, errors.New("wrapping the unwrap pool: no results")
	}
	kb.logf("keyops: KEK %q v%d, %d wrapped keys to unwrap; %d client(s) spread over %s", kb.kek, res.KEKVersion, len(pool), len(kb.clients), strings.Join(res.Endpoints, ", "))

	plain := make([]byte, 32)
	rand.Read(plain)
	ops := []struct {
		name string
		do   func(ctx context.Context, cl *client.Client, i int) (int, []error, error)
	}{
		{opUnwrap, func(ctx context.Context, cl *client.Client, i int) (int, []error, error) {
			r, err := cl.Unwrap(ctx, kb.kek, pool[i%len(pool)], kb.context)
			clear(r.Plaintext)
			return 1, nil, err
		}},
		{opWrap, func(ctx context.Context, cl *client.Client, i int) (int, []error, error) {
			_, err := cl.Wrap(ctx, kb.kek, plain, kb.context)
			return 1, nil, err
		}},
		{opDataKey, func(ctx context.Context, cl *client.Client, i int) (int, []error, error) {
			r, err := cl.DataKey(ctx, kb.kek, kb.context, false)
			clear(r.Plaintext)
			return 1, nil, err
		}},
	}
	for _, op := range ops {
		for _, n := range kb.o.levels {
			p, err := kb.point(ctx, op.name, n, 0, op.do)
			res.Points = append(res.Points, p)
			if err != nil {
				return res, err
			}
		}
	}
	if kb.o.batchSize > 0 && kb.o.batchConc > 0 {
		size := kb.o.batchSize
		batch := func(ctx context.Context, cl *client.Client, i int) (int, []error, error) {
			items := make([]client.UnwrapItem, size)
			for j := range items {
				items[j] = client.UnwrapItem{Wrapped: pool[(i*size+j)%len(pool)], Context: kb.context}
			}
			r, err := cl.UnwrapBatch(ctx, kb.kek, items)
			if err != nil {
				return 0, nil, err
			}
			var ok int
			var errs []error
			for _, it := range r.Results {
				if e := it.Err(); e != nil {
					errs = append(errs, e)
					continue
				}
				clear(it.Plaintext)
				ok++
			}
			return ok, errs, nil
		}
		p, err := kb.point(ctx, opUnwrapBatch, kb.o.batchConc, size, batch)
		res.Points = append(res.Points, p)
		if err != nil {
			return res, err
		}
	}
	if kb.memory != nil {
		res.NodesAfter = kb.memory()
	}
	res.Targets = keyOpTargets(res.Points)
	return res, nil
}

// point runs n closed-loop workers doing op for warmup+duration. Worker w
// uses client w mod len(clients); its i-th call gets i*n+w (the pool
// index). Throughput counts requests answered inside the measured window;
// latencies are those of requests sent inside it.
func (kb *keyOpsBench) point(ctx context.Context, name string, n, batch int, op func(ctx context.Context, cl *client.Client, i int) (int, []error, error)) (keyOpPoint, error) {
	p := keyOpPoint{Op: name, Concurrency: n, BatchSize: batch, Seconds: kb.o.duration.Seconds()}
	what := name
	if batch > 0 {
		what = fmt.Sprintf("%s of %d", name, batch)
	}
	kb.logf("keyops: %s, %d worker(s), %v warmup + %v measured", what, n, kb.o.warmup, kb.o.duration)
	type worker struct {
		lats []time.Duration
		ok   int
		keys int
		errs errTally
	}
	ws := make([]worker, n)
	var cpu0 map[string]float64
	if kb.cpu != nil {
		cpu0 = kb.cpu()
	}
	t0 := time.Now()
	from, until := t0.Add(kb.o.warmup), t0.Add(kb.o.warmup+kb.o.duration)
	var wg sync.WaitGroup
	for w := range ws {
		wk := &ws[w]
		cl := kb.clients[w%len(kb.clients)]
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				sent := time.Now()
				if !sent.Before(until) {
					return
				}
				keys, itemErrs, err := op(ctx, cl, i*n+w)
				done := time.Now()
				measured := !sent.Before(from)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if measured {
						wk.errs.add(err)
					}
					sleepCtx(ctx, benchErrPause)
					continue
				}
				if !done.Before(from) && !done.After(until) {
					wk.ok++
					wk.keys += keys
					for _, e := range itemErrs {
						wk.errs.add(e)
					}
				}
				if measured {
					wk.lats = append(wk.lats, done.Sub(sent))
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	if err := ctx.Err(); err != nil {
		return p, err
	}
	if kb.cpu != nil {
		p.CPU = map[string]float64{}
		for id, c1 := range kb.cpu() {
			if c0, ok := cpu0[id]; ok {
				p.CPU[id] = math.Round((c1-c0)/wall.Seconds()*100) / 100
			}
		}
	}
	var lats []time.Duration
	var errs errTally
	for i := range ws {
		lats = append(lats, ws[i].lats...)
		p.OK += ws[i].ok
		p.Keys += ws[i].keys
		errs.merge(&ws[i].errs)
	}
	slices.Sort(lats)
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	p.Samples, p.Errors, p.ErrorKinds, p.ErrorSample = len(lats), errs.n, errs.kinds, errs.sample
	secs := kb.o.duration.Seconds()
	p.PerSecond = math.Round(float64(p.OK)/secs*10) / 10
	p.KeysPerSecond = math.Round(float64(p.Keys)/secs*10) / 10
	if len(lats) > 0 {
		p.MeanMs = ms(sum / time.Duration(len(lats)))
		p.MaxMs = ms(lats[len(lats)-1])
	}
	p.P50Ms, p.P90Ms, p.P99Ms = ms(percentile(lats, 50)), ms(percentile(lats, 90)), ms(percentile(lats, 99))
	if kb.memory != nil {
		p.RSS, p.RSSAnon = map[string]uint64{}, map[string]uint64{}
		for _, m := range kb.memory() {
			if m.Error == "" {
				p.RSS[m.ID], p.RSSAnon[m.ID] = m.RSS, m.RSSAnon
			}
		}
	}
	kb.logf("keyops: %s at %d: %.0f ops/s (%.0f data keys/s), p50 %.2fms p99 %.2fms, %d errors",
		what, n, p.PerSecond, p.KeysPerSecond, p.P50Ms, p.P99Ms, p.Errors)
	return p, nil
}

// keyOpTargets compares the points with the targets.
func keyOpTargets(points []keyOpPoint) []keyOpTarget {
	unwrap := keyOpTarget{What: fmt.Sprintf("single unwrap at concurrency %d", targetUnwrapConc),
		Target: fmt.Sprintf("≥ %d/s with p99 ≤ %d ms", targetUnwrapPerSec, targetUnwrapP99Ms), Got: "not measured"}
	batch := keyOpTarget{What: "batch unwrap", Target: fmt.Sprintf("≥ %d data keys/s", targetBatchKeysSec), Got: "not measured"}
	for _, p := range points {
		switch {
		case p.Op == opUnwrap && p.Concurrency == targetUnwrapConc:
			unwrap.Got = fmt.Sprintf("%.0f/s, p99 %.1f ms", p.PerSecond, p.P99Ms)
			unwrap.Met = p.PerSecond >= targetUnwrapPerSec && p.P99Ms <= targetUnwrapP99Ms && p.Errors == 0
			if p.Errors > 0 {
				unwrap.Got += fmt.Sprintf(", %d errors", p.Errors)
			}
		case p.Op == opUnwrapBatch:
			batch.What = fmt.Sprintf("batch unwrap of %d at concurrency %d", p.BatchSize, p.Concurrency)
			batch.Got = fmt.Sprintf("%.0f data keys/s", p.KeysPerSecond)
			batch.Met = p.KeysPerSecond >= targetBatchKeysSec && p.Errors == 0
			if p.Errors > 0 {
				batch.Got += fmt.Sprintf(", %d errors", p.Errors)
			}
		}
	}
	return []keyOpTarget{unwrap, batch}
}

// printKeyOps prints the phase's results as a table, then the targets.
func printKeyOps(w io.Writer, r *keyOpsResult) {
	fmt.Fprintf(w, "\nKey operations: KEK %q v%d, agent certificate, closed-loop workers on keep-alive mTLS connections spread over %d node(s); %.0fs warmup per point\n",
		r.KEK, r.KEKVersion, len(r.Endpoints), r.Warmup)
	var nodes []string
	for _, p := range r.Points {
		for id := range p.RSS {
			if !slices.Contains(nodes, id) {
				nodes = append(nodes, id)
			}
		}
	}
	slices.Sort(nodes)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	head := "  OP\tCONC\tBATCH\tSECONDS\tOK\tERRORS\tOPS/S\tKEYS/S\tMEAN\tP50\tP90\tP99\tMAX\t"
	for _, id := range nodes {
		head += "RSS " + id + "\t"
	}
	fmt.Fprintln(tw, head)
	for _, p := range r.Points {
		batch := "-"
		if p.BatchSize > 0 {
			batch = fmt.Sprint(p.BatchSize)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%.0f\t%d\t%d\t%.0f\t%.0f\t%.2fms\t%.2fms\t%.2fms\t%.2fms\t%.2fms\t",
			p.Op, p.Concurrency, batch, p.Seconds, p.OK, p.Errors, p.PerSecond, p.KeysPerSecond, p.MeanMs, p.P50Ms, p.P90Ms, p.P99Ms, p.MaxMs)
		for _, id := range nodes {
			if rss, ok := p.RSS[id]; ok {
				fmt.Fprintf(tw, "%s\t", mib(rss))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, p := range r.Points {
		if p.Errors > 0 {
			fmt.Fprintf(w, "  %s at %d: errors%s; e.g. %s\n", p.Op, p.Concurrency, kinds(p.ErrorKinds), p.ErrorSample)
		}
	}
	// Where the time went: cores busy per process, and the nodes' own memory.
	var procs []string
	for _, p := range r.Points {
		for id := range p.CPU {
			if !slices.Contains(procs, id) {
				procs = append(procs, id)
			}
		}
	}
	slices.SortFunc(procs, func(a, b string) int { // nodes first, then this process
		if (a == loadProcess) != (b == loadProcess) {
			if a == loadProcess {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	if len(procs) > 0 || len(nodes) > 0 {
		fmt.Fprintln(w, "  CPU: cores busy during each point (warmup included), by node and for this load process; RssAnon: each node's heap and stacks")
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
		head := "  OP\tCONC\t"
		for _, id := range procs {
			head += "CPU " + id + "\t"
		}
		for _, id := range nodes {
			head += "ANON " + id + "\t"
		}
		fmt.Fprintln(tw, head)
		for _, p := range r.Points {
			fmt.Fprintf(tw, "  %s\t%d\t", p.Op, p.Concurrency)
			for _, id := range procs {
				if c, ok := p.CPU[id]; ok {
					fmt.Fprintf(tw, "%.2f\t", c)
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
			for _, id := range nodes {
				if a, ok := p.RSSAnon[id]; ok {
					fmt.Fprintf(tw, "%s\t", mib(a))
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	if len(r.NodesAfter) > 0 {
		var parts []string
		for _, m := range r.NodesAfter {
			if m.Error != "" {
				parts = append(parts, fmt.Sprintf("%s: %s", m.ID, m.Error))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %s (anon %s, file %s; peak %s)", m.ID, mib(m.RSS), mib(m.RSSAnon), mib(m.RSSFile), mib(m.HWM)))
		}
		fmt.Fprintf(w, "  node RSS after the phase: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w, "  (OK: requests answered in the measured window; KEYS/S: data keys handled per second, 1 per request but a batch's items; latencies per request)")
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "Targets:")
		for _, t := range r.Targets {
			verdict := "NOT MET"
			switch {
			case t.Got == "not measured":
				verdict = "not measured"
			case t.Met:
				verdict = "met"
			}
			fmt.Fprintf(w, "  %-40s %-34s target %-28s %s\n", t.What, t.Got, t.Target, verdict)
		}
	}
}

// writeKeyOpsResults writes the key-op results with the run's context to path.
func writeKeyOpsResults(path string, rep *benchReport) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(keyOpsFile{Cluster: rep.Cluster, Nodes: rep.Nodes, Host: rep.Host, Started: rep.Started, KeyOps: rep.KeyOps}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
