package main

// `custos dev bench`: whole-cluster figures of a running dev cluster, through
// the real write path (mutual TLS, HTTP API, group commit, raft with fsync,
// HSM-signed checkpoints):
//
//   - load: sys.canary appends per second and their latency at several
//     concurrencies, each appender a closed loop on keep-alive connections;
//   - failover: kill -9 of the leader, time until a survivor names a new
//     leader and until the first append is acknowledged again;
//   - fill: append until the log holds N entries, then every node's RSS,
//     peak RSS and data directory size (resumable: a log already that long
//     is only measured);
//   - keyops (--keyops, bench_keyops.go): agents' unwrap, wrap, datakey and
//     batch unwrap under the demo KEK against every node, with each node's
//     RSS, written to a JSON results file as well.
//
// Phases run in the order fill, load, keyops, failover, so that a load run
// after a fill measures appends into a log of that size.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
)

// Bench tunables that are not flags.
const (
	benchErrPause      = 20 * time.Millisecond // an appender's pause after a failed append
	benchMaxConc       = 4096                  // most appenders one level may ask for
	bgAppenders        = 2                     // the failover phase's background appenders
	bgPause            = 5 * time.Millisecond  // their pause between acknowledged appends
	leaderPoll         = 10 * time.Millisecond // how often survivors are asked for a leader
	fillProgressEvery  = 10 * time.Second
	fillStallLimit     = 60 * time.Second // fill gives up after this long without one acknowledged append
	fillCatchUpTimeout = 2 * time.Minute  // how long to wait for followers to reach the target
	rejoinTimeout      = 2 * time.Minute
)

type benchOptions struct {
	dir             string
	levels          []int
	duration        time.Duration
	warmup          time.Duration
	failovers       int
	pauses          int
	failoverTimeout time.Duration
	fill            uint64
	fillConc        int
	timeout         time.Duration
	json            bool
	keyOps          keyOpsOptions
}

func devBench(ctx context.Context, stdout io.Writer, args []string) error {
	fset := flag.NewFlagSet("dev bench", flag.ContinueOnError)
	var o benchOptions
	fset.StringVar(&o.dir, "dir", ".custos-dev", "the directory of a cluster started with custos dev up")
	conc := fset.String("concurrency", "1,32,256", "comma-separated numbers of concurrent appenders for the load phase; empty or \"none\" skips it")
	fset.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each load level")
	fset.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each load level (connections, caches)")
	fset.IntVar(&o.failovers, "failovers", 3, "kill -9 the leader this many times, restarting it after each; 0 skips the phase")
	fset.IntVar(&o.pauses, "pauses", 3, "pause the leader (SIGSTOP) this many times, resuming it (SIGCONT) after each; 0 skips the phase")
	fset.DurationVar(&o.failoverTimeout, "failover-timeout", 60*time.Second, "bound on each failover round's wait for a new leader and an acknowledged append")
	fill := fset.Uint64("fill", 0, "append until the log holds this many entries, then report each node's RSS and disk use; 0 skips the phase")
	fset.IntVar(&o.fillConc, "fill-concurrency", 256, "concurrent appenders of the fill phase")
	fset.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on each API request")
	fset.BoolVar(&o.json, "json", false, "print the results as JSON (progress goes to stderr)")
	fset.BoolVar(&o.keyOps.enabled, "keyops", false, "run the key-operation phase: unwrap, wrap and datakey at --keyops-concurrency, then batch unwrap, under KEK \""+devcluster.DemoKEK+"\" (created by the demo officers' ceremony if missing)")
	keyConc := fset.String("keyops-concurrency", defaultKeyOpsConc, "comma-separated numbers of concurrent workers for unwrap, wrap and datakey")
	keyDur := fset.Duration("keyops-duration", defaultKeyOpsDur, "measured time of each key-op point (default 20s, or --duration when that is given)")
	fset.IntVar(&o.keyOps.batchSize, "batch-size", defaultBatchSize, "data keys per batch unwrap request (1 to 1000; 0 skips the batch point)")
	fset.IntVar(&o.keyOps.batchConc, "batch-concurrency", defaultBatchConc, "concurrent workers of the batch unwrap point")
	fset.StringVar(&o.keyOps.results, "results", defaultResults, "write the key-op results to this JSON file (directories created; \"\": none)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	set := setFlags(fset)
	o.keyOps.duration, o.keyOps.warmup, o.keyOps.timeout = *keyDur, o.warmup, o.timeout
	if set["duration"] && !set["keyops-duration"] {
		o.keyOps.duration = o.duration
	}
	keyLevels, err := parseConcurrency(*keyConc)
	if err != nil {
		return fmt.Errorf("--keyops-concurrency: %w", err)
	}
	o.keyOps.levels = keyLevels
	if fset.NArg() > 0 {
		return usagef("unexpected arguments %q", fset.Args())
	}
	levels, err := parseConcurrency(*conc)
	if err != nil {
		return fmt.Errorf("--concurrency: %w", err)
	}
	o.levels, o.fill = levels, *fill
	switch {
	case o.duration <= 0 || o.warmup < 0 || o.timeout <= 0 || o.failoverTimeout <= 0:
		return errors.New("--duration, --timeout and --failover-timeout must be positive, --warmup not negative")
	case o.failovers < 0 || o.pauses < 0:
		return errors.New("--failovers and --pauses must not be negative")
	case o.fillConc < 1 || o.fillConc > benchMaxConc:
		return fmt.Errorf("--fill-concurrency must be 1 to %d", benchMaxConc)
	case o.keyOps.duration <= 0:
		return errors.New("--keyops-duration must be positive")
	case o.keyOps.batchSize < 0 || o.keyOps.batchSize > client.MaxBatchItems:
		return fmt.Errorf("--batch-size must be 0 to %d", client.MaxBatchItems)
	case o.keyOps.batchConc < 1 || o.keyOps.batchConc > benchMaxConc:
		return fmt.Errorf("--batch-concurrency must be 1 to %d", benchMaxConc)
	}
	c, err := devcluster.Load(o.dir)
	if err != nil {
		return err
	}
	logw := stdout
	if o.json {
		logw = os.Stderr
	}
	b := &bench{c: c, o: o, logf: func(format string, a ...any) {
		fmt.Fprintf(logw, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}}
	rep, err := b.run(ctx)
	if rep != nil && rep.KeyOps != nil && o.keyOps.results != "" {
		if werr := writeKeyOpsResults(o.keyOps.results, rep); werr != nil {
			err = errors.Join(err, fmt.Errorf("--results: %w", werr))
		} else {
			b.logf("key-op results written to %s", o.keyOps.results)
		}
	}
	if rep != nil {
		if o.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printBenchReport(stdout, rep)
		}
	}
	return err
}

// parseConcurrency reads "1,32,256". Empty or "none" is no levels at all.
func parseConcurrency(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number of appenders", strings.TrimSpace(f))
		}
		if n < 1 || n > benchMaxConc {
			return nil, usagef("%d appenders: want 1 to %d", n, benchMaxConc)
		}
		out = append(out, n)
	}
	return out, nil
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be in ascending order; 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Report shapes, as --json prints them.
type (
	benchReport struct {
		Cluster  string          `json:"cluster"`
		Dir      string          `json:"dir"`
		Nodes    int             `json:"nodes"`
		Host     hostInfo        `json:"host"`
		Started  time.Time       `json:"started"`
		Seconds  float64         `json:"seconds"`
		Fill     *fillResult     `json:"fill,omitempty"`
		Load     []loadResult    `json:"load,omitempty"`
		KeyOps   *keyOpsResult   `json:"key_ops,omitempty"`
		Failover *failoverResult `json:"failover,omitempty"`
		Pause    *failoverResult `json:"pause,omitempty"`
	}
	hostInfo struct {
		CPUs         int    `json:"cpus"`
		LoadAvgStart string `json:"loadavg_start"` // /proc/loadavg: the machine may be shared
		LoadAvgEnd   string `json:"loadavg_end"`
	}
	loadResult struct {
		Concurrency   int            `json:"concurrency"`
		Seconds       float64        `json:"seconds"`
		OK            int            `json:"ok"` // acknowledged appends that ended in the measured window
		Errors        int            `json:"errors"`
		ErrorKinds    map[string]int `json:"error_kinds,omitempty"`
		ErrorSample   string         `json:"error_sample,omitempty"`
		PerSecond     float64        `json:"entries_per_s"`
		MeanMs        float64        `json:"mean_ms"` // latencies of appends started in the window
		P50Ms         float64        `json:"p50_ms"`
		P90Ms         float64        `json:"p90_ms"`
		P99Ms         float64        `json:"p99_ms"`
		MaxMs         float64        `json:"max_ms"`
		Samples       int            `json:"samples"`
		LogSizeBefore uint64         `json:"log_size_before"`
		LogSizeAfter  uint64         `json:"log_size_after"`
	}
	failoverRound struct {
		Round      int     `json:"round"`
		Killed     string  `json:"killed"`
		NewLeader  string  `json:"new_leader,omitempty"`
		LeaderMs   float64 `json:"new_leader_ms,omitempty"` // kill → a survivor names a new leader
		FirstAckMs float64 `json:"first_ack_ms,omitempty"`  // kill → first append sent after the kill is acknowledged
		RejoinMs   float64 `json:"rejoin_ms,omitempty"`     // restart → the killed node is a voter again
		AcksBefore int     `json:"acks_before_kill"`        // background appends acknowledged before the kill
		Error      string  `json:"error,omitempty"`
	}
	failoverResult struct {
		Rounds           []failoverRound `json:"rounds"`
		MedianLeaderMs   float64         `json:"median_new_leader_ms"`
		MedianFirstAckMs float64         `json:"median_first_ack_ms"`
		MedianRejoinMs   float64         `json:"median_rejoin_ms"`
	}
	fillResult struct {
		Target      uint64         `json:"target"`
		StartSize   uint64         `json:"start_size"`
		EndSize     uint64         `json:"end_size"`
		Concurrency int            `json:"concurrency"`
		Seconds     float64        `json:"seconds"`
		PerSecond   float64        `json:"entries_per_s"`
		Errors      int            `json:"errors"`
		ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
		Progress    []fillSample   `json:"progress,omitempty"`
		Nodes       []nodeUsage    `json:"nodes"`
	}
	fillSample struct {
		Seconds   float64           `json:"seconds"`
		LogSize   uint64            `json:"log_size"`
		PerSecond float64           `json:"entries_per_s"`  // since the previous sample
		RSS       map[string]uint64 `json:"rss_bytes"`      // by node id
		RSSAnon   map[string]uint64 `json:"rss_anon_bytes"` // by node id: heap, stacks (not the mmapped files)
	}
	nodeUsage struct {
		ID      string `json:"id"`
		PID     int    `json:"pid"`
		Leader  bool   `json:"leader"`
		LogSize uint64 `json:"log_size"`
		procMem
		DataBytes uint64            `json:"data_bytes"`
		DataAlloc uint64            `json:"data_alloc_bytes"` // blocks allocated on disk
		DataFiles map[string]uint64 `json:"data_files"`       // top-level entries of the data dir
		Error     string            `json:"error,omitempty"`
	}
	// procMem is a process's memory as /proc/PID/status gives it, in bytes.
	procMem struct {
		RSS     uint64 `json:"rss_bytes"`      // VmRSS = RssAnon + RssFile + RssShmem
		HWM     uint64 `json:"hwm_bytes"`      // VmHWM: peak RSS since the process started
		RSSAnon uint64 `json:"rss_anon_bytes"` // RssAnon: heap, stacks
		RSSFile uint64 `json:"rss_file_bytes"` // RssFile: mapped files (bbolt's mmap, the binary)
	}
)

type bench struct {
	c    *devcluster.Cluster
	o    benchOptions
	logf func(format string, a ...any)
}

func (b *bench) run(ctx context.Context) (*benchReport, error) {
	start := time.Now()
	rep := &benchReport{Cluster: b.c.Name, Dir: b.c.Dir, Nodes: len(b.c.Nodes), Started: start.UTC(),
		Host: hostInfo{CPUs: runtime.NumCPU(), LoadAvgStart: loadAvg()}}
	finish := func(err error) (*benchReport, error) {
		rep.Host.LoadAvgEnd = loadAvg()
		rep.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
		return rep, err
	}
	leader, _, err := b.leader(ctx)
	if err != nil {
		return nil, err
	}
	b.logf("cluster %q in %s: %d nodes, leader %s; %d CPUs, load average %s", b.c.Name, b.c.Dir, len(b.c.Nodes), leader, rep.Host.CPUs, rep.Host.LoadAvgStart)

	if b.o.fill > 0 {
		fr, err := b.fillPhase(ctx)
		rep.Fill = fr
		if err != nil {
			return finish(fmt.Errorf("fill: %w", err))
		}
	}
	if len(b.o.levels) > 0 {
		cl, err := b.loadClient(ctx, slices.Max(b.o.levels))
		if err != nil {
			return finish(err)
		}
		for _, n := range b.o.levels {
			r, err := b.loadLevel(ctx, cl, n)
			if err != nil {
				cl.Close()
				return finish(fmt.Errorf("load at %d: %w", n, err))
			}
			rep.Load = append(rep.Load, r)
		}
		cl.Close()
	}
	if b.o.keyOps.enabled {
		kr, err := b.keyOpsPhase(ctx)
		rep.KeyOps = kr
		if err != nil {
			return finish(fmt.Errorf("key ops: %w", err))
		}
	}
	if b.o.failovers > 0 {
		fr, err := b.failoverPhase(ctx, killLeader)
		rep.Failover = fr
		if err != nil {
			return finish(fmt.Errorf("failover: %w", err))
		}
	}
	if b.o.pauses > 0 {
		pr, err := b.failoverPhase(ctx, pauseLeader)
		rep.Pause = pr
		if err != nil {
			return finish(fmt.Errorf("pause: %w", err))
		}
	}
	return finish(nil)
}

// operator returns an operator client for endpoints.
func (b *bench) operator(endpoints []string, timeout time.Duration, conns int) (*client.Client, error) {
	return client.New(client.Config{Endpoints: endpoints, TLSFiles: b.c.ClientTLS(identity.RoleOperator),
		Timeout: timeout, MaxIdleConnsPerHost: max(conns, 64)})
}

// leader waits (up to 30s) until the cluster names a leader that is one of
// its nodes and returns it with the endpoints, the leader's first.
func (b *bench) leader(ctx context.Context) (string, []string, error) {
	cl, err := b.operator(b.c.Endpoints(), 2*time.Second, 0)
	if err != nil {
		return "", nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for {
		st, err := cl.Cluster(ctx)
		if err == nil {
			if n := b.c.Node(st.Leader.ID); n != nil {
				eps := []string{n.APIURL()}
				for _, m := range b.c.Nodes {
					if m != n {
						eps = append(eps, m.APIURL())
					}
				}
				return n.ID, eps, nil
			}
			err = fmt.Errorf("node %s knows no leader", st.NodeID)
		}
		last = err
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return "", nil, fmt.Errorf("no leader: %w (last: %v)", ctx.Err(), last)
		}
	}
}

// loadClient is one client shared by all appenders, the leader's endpoint
// first, with enough idle connections for every appender to keep its own.
func (b *bench) loadClient(ctx context.Context, conns int) (*client.Client, error) {
	_, eps, err := b.leader(ctx)
	if err != nil {
		return nil, err
	}
	return b.operator(eps, b.o.timeout, conns)
}

// logSize is the log size the client's preferred node reports (0 if it
// cannot be read).
func logSize(ctx context.Context, cl *client.Client) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := cl.Cluster(ctx)
	if err != nil {
		return 0
	}
	return st.LogSize
}

// errTally counts failed appends by kind and keeps one message.
type errTally struct {
	n      int
	kinds  map[string]int
	sample string
}

func (t *errTally) add(err error) {
	if t.kinds == nil {
		t.kinds = map[string]int{}
	}
	t.n++
	t.kinds[errKind(err)]++
	if t.sample == "" {
		t.sample = err.Error()
	}
}

func (t *errTally) merge(o *errTally) {
	for k, v := range o.kinds {
		if t.kinds == nil {
			t.kinds = map[string]int{}
		}
		t.kinds[k] += v
	}
	t.n += o.n
	if t.sample == "" {
		t.sample = o.sample
	}
}

// errKind names a failure: the API's error code, "timeout", or "transport".
func errKind(err error) string {
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.As(err, &ae):
		return "http_" + strconv.Itoa(ae.Status)
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport"
}

// loadLevel runs n closed-loop appenders for warmup+duration. Throughput
// counts appends acknowledged inside the measured window; latencies are
// those of appends sent inside it.
func (b *bench) loadLevel(ctx context.Context, cl *client.Client, n int) (loadResult, error) {
	r := loadResult{Concurrency: n, Seconds: b.o.duration.Seconds()}
	b.logf("load: %d appender(s), %v warmup + %v measured", n, b.o.warmup, b.o.duration)
	r.LogSizeBefore = logSize(ctx, cl)
	type worker struct {
		lats []time.Duration
		ok   int
		errs errTally
	}
	ws := make([]worker, n)
	t0 := time.Now()
	from, until := t0.Add(b.o.warmup), t0.Add(b.o.warmup+b.o.duration)
	var wg sync.WaitGroup
	for i := range ws {
		w := &ws[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				sent := time.Now()
				if !sent.Before(until) {
					return
				}
				_, err := cl.Canary(ctx)
				done := time.Now()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if !sent.Before(from) {
						w.errs.add(err)
					}
					sleepCtx(ctx, benchErrPause)
					continue
				}
				if !done.Before(from) && !done.After(until) {
					w.ok++
				}
				if !sent.Before(from) {
					w.lats = append(w.lats, done.Sub(sent))
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	var lats []time.Duration
	var errs errTally
	for i := range ws {
		lats = append(lats, ws[i].lats...)
		r.OK += ws[i].ok
		errs.merge(&ws[i].errs)
	}
	slices.Sort(lats)
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	r.Samples, r.Errors, r.ErrorKinds, r.ErrorSample = len(lats), errs.n, errs.kinds, errs.sample
	r.PerSecond = math.Round(float64(r.OK)/b.o.duration.Seconds()*10) / 10
	if len(lats) > 0 {
		r.MeanMs = ms(sum / time.Duration(len(lats)))
	}
	r.P50Ms, r.P90Ms, r.P99Ms = ms(percentile(lats, 50)), ms(percentile(lats, 90)), ms(percentile(lats, 99))
	if len(lats) > 0 {
		r.MaxMs = ms(lats[len(lats)-1])
	}
	r.LogSizeAfter = logSize(ctx, cl)
	b.logf("load: %d appender(s): %.0f entries/s, p50 %.2fms p99 %.2fms max %.2fms, %d errors",
		n, r.PerSecond, r.P50Ms, r.P99Ms, r.MaxMs, r.Errors)
	return r, nil
}

// How a failover round takes the leader away.
type leaderFault int

const (
	killLeader  leaderFault = iota // kill -9, then restart
	pauseLeader                    // SIGSTOP: alive but silent, then SIGCONT
)

func (f leaderFault) String() string {
	if f == pauseLeader {
		return "pause (SIGSTOP)"
	}
	return "kill -9"
}

// failoverPhase kills (o.failovers times) or pauses (o.pauses times) the leader.
func (b *bench) failoverPhase(ctx context.Context, fault leaderFault) (*failoverResult, error) {
	res := &failoverResult{}
	rounds := b.o.failovers
	if fault == pauseLeader {
		rounds = b.o.pauses
	}
	for i := 1; i <= rounds; i++ {
		r, err := b.failoverRound(ctx, i, rounds, fault)
		res.Rounds = append(res.Rounds, r)
		if err != nil {
			return res, err
		}
	}
	var leaders, acks, rejoins []float64
	for _, r := range res.Rounds {
		if r.Error != "" {
			continue
		}
		leaders, acks, rejoins = append(leaders, r.LeaderMs), append(acks, r.FirstAckMs), append(rejoins, r.RejoinMs)
	}
	res.MedianLeaderMs, res.MedianFirstAckMs, res.MedianRejoinMs = median(leaders), median(acks), median(rejoins)
	return res, nil
}

// failoverRound kills or pauses the leader under a light append load, times
// the recovery and restarts (or resumes) the node. A round that times out is
// recorded with its error; only a failure to bring the node back stops the
// phase.
func (b *bench) failoverRound(ctx context.Context, round, rounds int, fault leaderFault) (failoverRound, error) {
	r := failoverRound{Round: round}
	leader, eps, err := b.leader(ctx)
	if err != nil {
		return r, err
	}
	r.Killed = leader
	if fault == pauseLeader {
		// A paused node accepts connections and never answers: its own
		// clients wait for their timeout whatever the cluster does. The
		// figure that counts is the followers': their appends travel to the
		// leader over the peer channel.
		eps = eps[1:]
	}
	bg, err := b.operator(eps, 2*time.Second, bgAppenders)
	if err != nil {
		return r, err
	}
	defer bg.Close()

	// Background appenders: kill time and first acknowledgement, unix ns.
	var killedAt, firstAck atomic.Int64
	var acksBefore atomic.Int64
	bgctx, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range bgAppenders {
		wg.Go(func() {
			for bgctx.Err() == nil {
				sent := time.Now().UnixNano()
				_, err := bg.Canary(bgctx)
				if err != nil {
					sleepCtx(bgctx, benchErrPause/2)
					continue
				}
				k := killedAt.Load()
				switch {
				case k == 0:
					acksBefore.Add(1)
				case sent >= k:
					firstAck.CompareAndSwap(0, time.Now().UnixNano())
				}
				sleepCtx(bgctx, bgPause)
			}
		})
	}
	defer func() { stopBG(); wg.Wait() }()
	sleepCtx(ctx, 500*time.Millisecond)

	r.AcksBefore = int(acksBefore.Load())
	b.logf("%s %d/%d: leader %s (pid %d) under %d background appenders (%d acknowledged so far)",
		fault, round, rounds, leader, b.c.Node(leader).PID, bgAppenders, r.AcksBefore)
	kill := time.Now()
	killedAt.Store(kill.UnixNano())
	if fault == pauseLeader {
		if err := b.c.Signal(leader, syscall.SIGSTOP); err != nil {
			return r, err
		}
	} else if err := b.c.Kill(leader); err != nil {
		return r, err
	}

	wctx, cancel := context.WithTimeout(ctx, b.o.failoverTimeout)
	newLeader, at, lerr := b.waitNewLeader(wctx, leader)
	if lerr == nil {
		r.NewLeader, r.LeaderMs = newLeader, ms(at.Sub(kill))
		for firstAck.Load() == 0 && sleepCtx(wctx, time.Millisecond) {
		}
	}
	cancel()
	switch a := firstAck.Load(); {
	case lerr != nil:
		r.Error = "no new leader: " + lerr.Error()
	case a == 0:
		r.Error = fmt.Sprintf("no append acknowledged within %v of the %s", b.o.failoverTimeout, fault)
	default:
		r.FirstAckMs = ms(time.Duration(a - kill.UnixNano()))
	}
	stopBG()
	wg.Wait()
	if r.Error == "" {
		b.logf("%s %d/%d: %s named leader after %.0fms; first append acknowledged after %.0fms",
			fault, round, rounds, r.NewLeader, r.LeaderMs, r.FirstAckMs)
	} else {
		b.logf("%s %d/%d: %s", fault, round, rounds, r.Error)
	}

	// Bring it back even if the bench is being interrupted: leave the cluster whole.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), rejoinTimeout)
	defer rcancel()
	restart := time.Now()
	if fault == pauseLeader {
		if err := b.c.Signal(leader, syscall.SIGCONT); err != nil {
			return r, fmt.Errorf("resume %s: %w", leader, err)
		}
	} else if err := b.c.Start(leader); err != nil {
		return r, fmt.Errorf("restart %s: %w", leader, err)
	}
	if err := b.c.WaitMember(rctx, leader); err != nil {
		return r, fmt.Errorf("restart %s: %w", leader, err)
	}
	r.RejoinMs = ms(time.Since(restart))
	b.logf("%s %d/%d: brought %s back (pid %d), a voter again after %.0fms",
		fault, round, rounds, leader, b.c.Node(leader).PID, r.RejoinMs)
	sleepCtx(ctx, time.Second) // let it settle before the next round
	return r, ctx.Err()
}

// waitNewLeader asks every node but killed, in parallel and repeatedly,
// whom it takes for leader; it returns the first other node named and when
// the answer arrived.
func (b *bench) waitNewLeader(ctx context.Context, killed string) (string, time.Time, error) {
	type found struct {
		id string
		at time.Time
	}
	ch := make(chan found, len(b.c.Nodes))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, n := range b.c.Nodes {
		if n.ID == killed {
			continue
		}
		cl, err := b.operator([]string{n.APIURL()}, time.Second, 0)
		if err != nil {
			return "", time.Time{}, err
		}
		wg.Go(func() {
			defer cl.Close()
			for {
				st, err := cl.Cluster(ctx)
				if err == nil && st.Leader.ID != "" && st.Leader.ID != killed {
					ch <- found{st.Leader.ID, time.Now()}
					return
				}
				if !sleepCtx(ctx, leaderPoll) {
					return
				}
			}
		})
	}
	select {
	case f := <-ch:
		return f.id, f.at, nil
	case <-ctx.Done():
		return "", time.Time{}, ctx.Err()
	}
}

// fillPhase appends until the leader's log holds o.fill entries, then
// measures every node.
func (b *bench) fillPhase(ctx context.Context) (*fillResult, error) {
	target := b.o.fill
	res := &fillResult{Target: target, Concurrency: b.o.fillConc}
	cl, err := b.loadClient(ctx, b.o.fillConc)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	st, err := cl.Cluster(ctx)
	if err != nil {
		return res, err
	}
	res.StartSize = st.LogSize
	if st.LogSize >= target {
		b.logf("fill: the log already holds %d entries (≥ %d): measuring only", st.LogSize, target)
	} else {
		b.logf("fill: %d → %d entries with %d appenders; progress every %v", st.LogSize, target, b.o.fillConc, fillProgressEvery)
		if err := b.fill(ctx, cl, res); err != nil {
			return res, err
		}
	}
	res.EndSize = logSize(ctx, cl)
	b.logf("fill: waiting for every node to hold %d entries", target)
	res.Nodes = b.measureNodes(ctx, target)
	return res, nil
}

func (b *bench) fill(ctx context.Context, cl *client.Client, res *fillResult) error {
	target := res.Target
	var top atomic.Uint64   // highest index acknowledged + 1
	var lastOK atomic.Int64 // unix ns of the last acknowledgement
	var failed atomic.Int64 // failed appends
	top.Store(res.StartSize)
	lastOK.Store(time.Now().UnixNano())
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	tallies := make([]errTally, b.o.fillConc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range b.o.fillConc {
		t := &tallies[i]
		wg.Go(func() {
			for fctx.Err() == nil && top.Load() < target {
				idx, err := cl.Canary(fctx)
				if err != nil {
					if fctx.Err() != nil {
						return
					}
					t.add(err)
					failed.Add(1)
					sleepCtx(fctx, benchErrPause)
					continue
				}
				lastOK.Store(time.Now().UnixNano())
				for {
					cur := top.Load()
					if idx+1 <= cur || top.CompareAndSwap(cur, idx+1) {
						break
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(fillProgressEvery)
	defer tick.Stop()
	prevSize, prevAt := res.StartSize, start
	var stalled error
loop:
	for {
		select {
		case <-done:
			break loop
		case now := <-tick.C:
			size := max(logSize(fctx, cl), top.Load())
			rate := float64(size-min(prevSize, size)) / now.Sub(prevAt).Seconds()
			s := fillSample{Seconds: math.Round(now.Sub(start).Seconds()), LogSize: size, PerSecond: math.Round(rate),
				RSS: map[string]uint64{}, RSSAnon: map[string]uint64{}}
			var mem []string
			for _, n := range b.c.Nodes {
				if m, err := readProcMem(n.PID); err == nil {
					s.RSS[n.ID], s.RSSAnon[n.ID] = m.RSS, m.RSSAnon
					mem = append(mem, fmt.Sprintf("%s %s (anon %s)", n.ID, mib(m.RSS), mib(m.RSSAnon)))
				}
			}
			res.Progress = append(res.Progress, s)
			eta := "?"
			if rate > 0 && size < target {
				eta = (time.Duration(float64(target-size)/rate) * time.Second).Round(time.Second).String()
			}
			b.logf("fill: %d entries (%.1f%%), %.0f/s, %d errors, eta %s; RSS %s",
				size, 100*float64(size)/float64(target), rate, failed.Load(), eta, strings.Join(mem, ", "))
			prevSize, prevAt = size, now
			if idle := time.Since(time.Unix(0, lastOK.Load())); idle > fillStallLimit {
				stalled = fmt.Errorf("no append acknowledged for %v", idle.Round(time.Second))
				stop()
			}
		}
	}
	<-done
	elapsed := time.Since(start)
	var errs errTally
	for i := range tallies {
		errs.merge(&tallies[i])
	}
	res.Errors, res.ErrorKinds = errs.n, errs.kinds
	res.Seconds = math.Round(elapsed.Seconds()*10) / 10
	appended := top.Load() - res.StartSize
	res.PerSecond = math.Round(float64(appended) / elapsed.Seconds())
	if stalled != nil {
		return fmt.Errorf("%w (last error: %s)", stalled, errs.sample)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.logf("fill: appended %d entries in %v (%.0f/s), %d errors", appended, elapsed.Round(time.Second), res.PerSecond, res.Errors)
	return nil
}

// measureNodes waits (bounded) until every running node's log holds target
// entries, then reads each node's memory and data dir.
func (b *bench) measureNodes(ctx context.Context, target uint64) []nodeUsage {
	leader, _, _ := b.leader(ctx)
	out := make([]nodeUsage, len(b.c.Nodes))
	wctx, cancel := context.WithTimeout(ctx, fillCatchUpTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, n := range b.c.Nodes {
		u := &out[i]
		u.ID, u.PID, u.Leader = n.ID, n.PID, n.ID == leader
		wg.Go(func() {
			cl, err := b.operator([]string{n.APIURL()}, 5*time.Second, 0)
			if err != nil {
				u.Error = err.Error()
				return
			}
			defer cl.Close()
			for {
				st, err := cl.Cluster(wctx)
				if err == nil {
					u.LogSize = st.LogSize
					if st.LogSize >= target {
						return
					}
				}
				if !sleepCtx(wctx, 500*time.Millisecond) {
					u.Error = fmt.Sprintf("log at %d after %v, below %d", u.LogSize, fillCatchUpTimeout, target)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, n := range b.c.Nodes {
		u := &out[i]
		m, err := readProcMem(n.PID)
		if err != nil && u.Error == "" {
			u.Error = err.Error()
		}
		u.procMem = m
		u.DataBytes, u.DataAlloc, u.DataFiles = dirUsage(filepath.Join(b.c.NodeDir(n.ID), "data"))
	}
	return out
}

// readProcMem reads pid's memory from /proc.
func readProcMem(pid int) (procMem, error) {
	if pid <= 0 {
		return procMem{}, errors.New("not running")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	return parseProcStatus(string(raw))
}

// parseProcStatus extracts VmRSS, VmHWM, RssAnon and RssFile (kB lines)
// from /proc/PID/status. VmRSS and VmHWM are required.
func parseProcStatus(s string) (procMem, error) {
	var m procMem
	fields := map[string]*uint64{"VmRSS": &m.RSS, "VmHWM": &m.HWM, "RssAnon": &m.RSSAnon, "RssFile": &m.RSSFile}
	seen := map[string]bool{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return procMem{}, fmt.Errorf("/proc status: unexpected %s line %q", k, line)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return procMem{}, fmt.Errorf("/proc status: %s: %w", k, err)
		}
		*dst, seen[k] = n<<10, true
	}
	if !seen["VmRSS"] || !seen["VmHWM"] {
		return procMem{}, errors.New("/proc status: no VmRSS or VmHWM (a kernel thread or a zombie?)")
	}
	return m, nil
}

// dirUsage sums the apparent size and the allocated blocks of the files
// under dir, and the apparent size of each of its top-level entries.
func dirUsage(dir string) (bytes, alloc uint64, top map[string]uint64) {
	top = map[string]uint64{}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		size := uint64(fi.Size())
		bytes += size
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += uint64(st.Blocks) * 512
		}
		if rel, err := filepath.Rel(dir, path); err == nil {
			top[strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]] += size
		}
		return nil
	})
	return bytes, alloc, top
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// sleepCtx sleeps d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// mib formats bytes in MiB.
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// printBenchReport prints rep as tables.
func printBenchReport(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "\nCustos dev bench: cluster %q (%d nodes on loopback, fsync on), %d CPUs, load average %s at start, %s at end\n",
		rep.Cluster, rep.Nodes, rep.Host.CPUs, rep.Host.LoadAvgStart, rep.Host.LoadAvgEnd)
	if f := rep.Fill; f != nil {
		fmt.Fprintf(w, "\nFill to %d entries: log %d → %d", f.Target, f.StartSize, f.EndSize)
		if f.Seconds > 0 {
			fmt.Fprintf(w, " in %.0fs (%.0f entries/s with %d appenders, %d errors%s)",
				f.Seconds, f.PerSecond, f.Concurrency, f.Errors, kinds(f.ErrorKinds))
		} else {
			fmt.Fprint(w, " (already there: measured only)")
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  NODE\tPID\tROLE\tLOG SIZE\tVmRSS\tRssAnon\tRssFile\tVmHWM\tDATA (apparent)\tDATA (on disk)\t")
		for _, n := range f.Nodes {
			role := "follower"
			if n.Leader {
				role = "leader"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", n.ID, n.PID, role, n.LogSize,
				mib(n.RSS), mib(n.RSSAnon), mib(n.RSSFile), mib(n.HWM), mib(n.DataBytes), mib(n.DataAlloc))
		}
		tw.Flush()
		for _, n := range f.Nodes {
			var parts []string
			names := make([]string, 0, len(n.DataFiles))
			for k := range n.DataFiles {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				parts = append(parts, fmt.Sprintf("%s %s", k, mib(n.DataFiles[k])))
			}
			fmt.Fprintf(w, "  %s data: %s\n", n.ID, strings.Join(parts, ", "))
			if n.Error != "" {
				fmt.Fprintf(w, "  %s: %s\n", n.ID, n.Error)
			}
		}
	}
	if len(rep.Load) > 0 {
		fmt.Fprintln(w, "\nLoad: sys.canary appends acknowledged after quorum commit, closed-loop appenders on keep-alive mTLS connections")
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  APPENDERS\tSECONDS\tOK\tERRORS\tENTRIES/S\tMEAN\tP50\tP90\tP99\tMAX\tLOG BEFORE\tLOG AFTER\t")
		for _, r := range rep.Load {
			fmt.Fprintf(tw, "  %d\t%.0f\t%d\t%d\t%.0f\t%.2fms\t%.2fms\t%.2fms\t%.2fms\t%.2fms\t%d\t%d\t\n",
				r.Concurrency, r.Seconds, r.OK, r.Errors, r.PerSecond, r.MeanMs, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.LogSizeBefore, r.LogSizeAfter)
		}
		tw.Flush()
		for _, r := range rep.Load {
			if r.Errors > 0 {
				fmt.Fprintf(w, "  at %d: errors%s; e.g. %s\n", r.Concurrency, kinds(r.ErrorKinds), r.ErrorSample)
			}
		}
	}
	if rep.KeyOps != nil {
		printKeyOps(w, rep.KeyOps)
	}
	printFailover(w, "Failover: kill -9 of the leader under light append load, then restart", "KILLED", rep.Failover)
	printFailover(w, "Pause: SIGSTOP of the leader under light append load, then SIGCONT", "PAUSED", rep.Pause)
	fmt.Fprintf(w, "\nTotal %.0fs. Figures from a shared machine are noisy: compare runs, not single numbers.\n", rep.Seconds)
}

// printFailover prints a kill or pause phase's rounds.
func printFailover(w io.Writer, title, verb string, f *failoverResult) {
	if f != nil {
		fmt.Fprintln(w, "\n"+title)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  ROUND\t"+verb+"\tNEW LEADER\tLEADER NAMED\tFIRST ACK\tREJOINED\t")
		for _, r := range f.Rounds {
			if r.Error != "" {
				fmt.Fprintf(tw, "  %d\t%s\t%s\t\t\t%.0fms\t  %s\n", r.Round, r.Killed, dash(r.NewLeader), r.RejoinMs, r.Error)
				continue
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%.0fms\t%.0fms\t%.0fms\t\n", r.Round, r.Killed, r.NewLeader, r.LeaderMs, r.FirstAckMs, r.RejoinMs)
		}
		fmt.Fprintf(tw, "  median\t\t\t%.0fms\t%.0fms\t%.0fms\t\n", f.MedianLeaderMs, f.MedianFirstAckMs, f.MedianRejoinMs)
		tw.Flush()
		fmt.Fprintln(w, "  (times from the signal; LEADER NAMED: a survivor's /v1/sys/cluster names another leader; FIRST ACK: an append sent after the signal is acknowledged)")
	}
}

// kinds formats error counts by kind: ": no_quorum 3, timeout 1".
func kinds(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return ": " + strings.Join(parts, ", ")
}
