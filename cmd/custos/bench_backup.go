package main

// `custos dev bench-backup`: backup and restore throughput, stored size and
// peak RSS of `custos backup run|restore` against a dev cluster, side by
// side with `tar | zstd -1 | age` and `restic`, on two corpora (a
// generated mix and real text from the machine), in interleaved rounds.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/custos-eu/custos/backup/agent"
	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/internal/benchcorpus"
)

// Tools the bench compares. bbPipelineSync is the pipeline's backup
// with its output fsynced (timed on): custos and restic make what they
// store durable before they end; the pipeline leaves it to writeback.
const (
	bbCustos       = "custos"
	bbPipeline     = "tar|zstd|age"
	bbPipelineSync = "…+fsync"
	bbRestic       = "restic"
)

// bbRun is one timed tool run.
type bbRun struct {
	Tool    string  `json:"tool"`  // custos, tar|zstd|age, restic
	Phase   string  `json:"phase"` // backup, restore
	Round   int     `json:"round"` // 1, 2, …
	Seconds float64 `json:"seconds"`
	MiBps   float64 `json:"mib_per_s"`
	// MaxRSSMiB is the largest peak RSS of the run's processes;
	// SumRSSMiB their sum (for a pipeline, whose processes run at once).
	MaxRSSMiB float64 `json:"max_rss_mib"`
	SumRSSMiB float64 `json:"sum_rss_mib"`
	Procs     int     `json:"processes"`
	// OutBytes is what a backup stored (everything the tool wrote to its
	// target or repository), or what a restore wrote.
	OutBytes int64 `json:"output_bytes,omitempty"`
	// ArchiveBytes and IndexBytes split a custos backup's OutBytes (the
	// rest is the manifest).
	ArchiveBytes int64 `json:"archive_bytes,omitempty"`
	IndexBytes   int64 `json:"index_bytes,omitempty"`
	// CPUSeconds is user+system time of all the run's processes.
	CPUSeconds float64 `json:"cpu_seconds"`
	Skipped    string  `json:"skipped,omitempty"`
}

// bbSummary is one tool's phase over the rounds: medians of time, speed
// and CPU, the largest RSS, and the stored size (the same every round).
type bbSummary struct {
	Tool         string  `json:"tool"`
	Phase        string  `json:"phase"`
	Rounds       int     `json:"rounds"`
	Seconds      float64 `json:"seconds"`
	MiBps        float64 `json:"mib_per_s"`
	MinMiBps     float64 `json:"min_mib_per_s"`
	MaxMiBps     float64 `json:"max_mib_per_s"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	MaxRSSMiB    float64 `json:"max_rss_mib"`
	SumRSSMiB    float64 `json:"sum_rss_mib"`
	Procs        int     `json:"processes"`
	OutBytes     int64   `json:"output_bytes,omitempty"`
	ArchiveBytes int64   `json:"archive_bytes,omitempty"`
	IndexBytes   int64   `json:"index_bytes,omitempty"`
	// Ratio is a backup's stored bytes over the corpus's.
	Ratio   float64 `json:"ratio,omitempty"`
	Skipped string  `json:"skipped,omitempty"`
}

type bbTarget struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
	Note string  `json:"note,omitempty"`
}

// bbCorpusResult is the bench on one corpus.
type bbCorpusResult struct {
	Corpus  benchcorpus.Corpus `json:"corpus"`
	Runs    []bbRun            `json:"runs"` // in the order they ran
	Summary []bbSummary        `json:"summary"`
	Targets []bbTarget         `json:"targets"`
}

type bbResult struct {
	Started  time.Time         `json:"started"`
	Host     string            `json:"host"`
	CPUs     int               `json:"cpus"`
	Rounds   int               `json:"rounds"`
	Corpora  []*bbCorpusResult `json:"corpora"`
	Versions []string          `json:"versions,omitempty"`
	// RSSSource says how peak RSS was measured.
	RSSSource string `json:"rss_source"`
}

// bbMeasure starts cmds (already wired together), waits for all, and
// returns the wall time and the peak RSS (KiB) of each. It fails if any
// exits non-zero, with its stderr. The parent's copies of the pipe ends
// (from bbPipe) are closed once all have started.
func bbMeasure(pipes []*os.File, cmds ...*exec.Cmd) (time.Duration, []int64, error) {
	// Write back what earlier steps left dirty (the corpus, the last
	// tool's output), so no tool pays for another's disk writes.
	syscall.Sync()
	defer func() {
		for _, p := range pipes {
			p.Close()
		}
	}()
	errs := make([]*bytes.Buffer, len(cmds))
	for i, c := range cmds {
		if c.Stderr == nil {
			errs[i] = new(bytes.Buffer)
			c.Stderr = errs[i]
		}
	}
	// Go starts children with vfork semantics, and Linux carries the
	// parent's peak RSS into the child's ru_maxrss across exec; GNU time
	// forks from a small process, so its figure is the child's own.
	timed := make([]string, len(cmds))
	if bbTimePath != "" {
		for i, c := range cmds {
			f, err := os.CreateTemp("", "custos-bench-rss-")
			if err != nil {
				return 0, nil, err
			}
			f.Close()
			defer os.Remove(f.Name())
			timed[i] = f.Name()
			c.Args = append([]string{bbTimePath, "-f", "%M %U %S", "-o", f.Name(), c.Path}, c.Args[1:]...)
			c.Path = bbTimePath
		}
	}
	start := time.Now()
	for i, c := range cmds {
		if err := c.Start(); err != nil {
			for _, p := range cmds[:i] {
				p.Process.Kill()
				p.Wait()
			}
			return 0, nil, fmt.Errorf("%s: %w", c.Path, err)
		}
	}
	for _, p := range pipes {
		p.Close()
	}
	rss := make([]int64, len(cmds))
	var cpu float64
	var firstErr error
	for i, c := range cmds {
		err := c.Wait()
		if err != nil && firstErr == nil {
			msg := ""
			if errs[i] != nil {
				msg = strings.TrimSpace(errs[i].String())
			}
			firstErr = fmt.Errorf("%s: %w: %s", strings.Join(c.Args, " "), err, msg)
		}
		if timed[i] != "" {
			b, _ := os.ReadFile(timed[i])
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			var u, sy float64
			if n, _ := fmt.Sscan(lines[len(lines)-1], &rss[i], &u, &sy); n == 3 { // KiB, s, s
				cpu += u + sy
			}
		} else if c.ProcessState != nil {
			if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
				rss[i] = int64(ru.Maxrss) // KiB on Linux
			}
			cpu += (c.ProcessState.UserTime() + c.ProcessState.SystemTime()).Seconds()
		}
	}
	bbLastCPU = cpu
	return time.Since(start), rss, firstErr
}

// bbLastCPU is the user+system CPU seconds of bbMeasure's last processes.
var bbLastCPU float64

// bbTimePath is GNU time, when present, to measure each child's peak RSS;
// without it the children's rusage is used (an upper bound: see bbMeasure).
var bbTimePath = func() string {
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		return "/usr/bin/time"
	}
	return ""
}()

// bbPipe wires cmds stdout→stdin with OS pipes; first's stdin and
// last's stdout are left to the caller.
func bbPipe(cmds ...*exec.Cmd) ([]*os.File, error) {
	var pipes []*os.File
	for i := 0; i+1 < len(cmds); i++ {
		r, w, err := os.Pipe()
		if err != nil {
			for _, p := range pipes {
				p.Close()
			}
			return nil, err
		}
		cmds[i].Stdout = w
		cmds[i+1].Stdin = r
		pipes = append(pipes, r, w)
	}
	return pipes, nil
}

// add records a run of round (from 1) and returns it.
func (r *bbCorpusResult) add(tool, phase string, round int, d time.Duration, rss []int64, out int64) *bbRun {
	run := bbRun{Tool: tool, Phase: phase, Round: round, Seconds: d.Seconds(), Procs: len(rss), OutBytes: out, CPUSeconds: bbLastCPU}
	if d > 0 {
		run.MiBps = float64(r.Corpus.Bytes) / (1 << 20) / d.Seconds()
	}
	for _, k := range rss {
		m := float64(k) / 1024
		run.SumRSSMiB += m
		run.MaxRSSMiB = max(run.MaxRSSMiB, m)
	}
	r.Runs = append(r.Runs, run)
	return &r.Runs[len(r.Runs)-1]
}

func (r *bbCorpusResult) skip(tool, phase, why string) {
	r.Runs = append(r.Runs, bbRun{Tool: tool, Phase: phase, Skipped: why})
}

// bbMedian of xs (not empty), which it sorts.
func bbMedian(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// summarize sets Summary from Runs, per tool and phase in the order first
// seen.
func (r *bbCorpusResult) summarize() {
	r.Summary = nil
	type key struct{ tool, phase string }
	var order []key
	runs := map[key][]bbRun{}
	skipped := map[key]string{}
	for _, x := range r.Runs {
		k := key{x.Tool, x.Phase}
		if _, ok := runs[k]; !ok {
			if _, ok := skipped[k]; !ok {
				order = append(order, k)
			}
		}
		if x.Skipped != "" {
			skipped[k] = x.Skipped
			continue
		}
		runs[k] = append(runs[k], x)
	}
	for _, k := range order {
		xs := runs[k]
		if len(xs) == 0 {
			r.Summary = append(r.Summary, bbSummary{Tool: k.tool, Phase: k.phase, Skipped: skipped[k]})
			continue
		}
		s := bbSummary{Tool: k.tool, Phase: k.phase, Rounds: len(xs), MinMiBps: xs[0].MiBps, MaxMiBps: xs[0].MiBps}
		var secs, speeds, cpus []float64
		for _, x := range xs {
			secs, speeds, cpus = append(secs, x.Seconds), append(speeds, x.MiBps), append(cpus, x.CPUSeconds)
			s.MinMiBps, s.MaxMiBps = min(s.MinMiBps, x.MiBps), max(s.MaxMiBps, x.MiBps)
			s.MaxRSSMiB, s.SumRSSMiB, s.Procs = max(s.MaxRSSMiB, x.MaxRSSMiB), max(s.SumRSSMiB, x.SumRSSMiB), x.Procs
			s.OutBytes, s.ArchiveBytes, s.IndexBytes = x.OutBytes, x.ArchiveBytes, x.IndexBytes
		}
		s.Seconds, s.MiBps, s.CPUSeconds = bbMedian(secs), bbMedian(speeds), bbMedian(cpus)
		if k.phase == "backup" && r.Corpus.Bytes > 0 {
			s.Ratio = float64(s.OutBytes) / float64(r.Corpus.Bytes)
		}
		r.Summary = append(r.Summary, s)
	}
}

func (r *bbCorpusResult) summary(tool, phase string) (bbSummary, bool) {
	for _, x := range r.Summary {
		if x.Tool == tool && x.Phase == phase && x.Skipped == "" {
			return x, true
		}
	}
	return bbSummary{}, false
}

// speedRatio is the median over the rounds of custos's backup speed over
// tool's in the same round: interleaved rounds share the machine's load.
func (r *bbCorpusResult) speedRatio(tool string) (float64, []float64) {
	byRound := map[int]float64{}
	for _, x := range r.Runs {
		if x.Tool == tool && x.Phase == "backup" && x.Skipped == "" {
			byRound[x.Round] = x.MiBps
		}
	}
	var ratios []float64
	for _, x := range r.Runs {
		if o, ok := byRound[x.Round]; ok && x.Tool == bbCustos && x.Phase == "backup" && x.Skipped == "" && o > 0 {
			ratios = append(ratios, x.MiBps/o)
		}
	}
	if len(ratios) == 0 {
		return 0, nil
	}
	return bbMedian(slices.Clone(ratios)), ratios
}

// Targets of custos backup run and restore.
const (
	// bbRSSLimitMiB is the peak RSS of either (a local target: no
	// upload buffers).
	bbRSSLimitMiB = 64
	// bbResticFactor is how much faster than restic a backup must be.
	bbResticFactor = 2.5
)

// evaluate sets the summary and the targets from the runs.
func (r *bbCorpusResult) evaluate() {
	r.summarize()
	r.Targets = nil
	cb, ok := r.summary(bbCustos, "backup")
	if !ok {
		return
	}
	ratioNote := func(med float64, rounds []float64) string {
		parts := make([]string, len(rounds))
		for i, x := range rounds {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		return fmt.Sprintf("%.2f×, median of rounds %s", med, strings.Join(parts, " "))
	}
	if p, ok := r.summary(bbPipeline, "backup"); ok {
		med, rounds := r.speedRatio(bbPipeline)
		r.Targets = append(r.Targets, bbTarget{Name: "backup vs tar|zstd -1|age", Want: fmt.Sprintf("≥ 1× (%.1f MiB/s)", p.MiBps),
			Got: cb.MiBps, Unit: "MiB/s", Met: med >= 1, Note: ratioNote(med, rounds)})
		r.Targets = append(r.Targets, bbTarget{Name: "stored vs tar|zstd -1|age", Want: fmt.Sprintf("≤ %.1f MiB", float64(p.OutBytes)/(1<<20)),
			Got: float64(cb.OutBytes) / (1 << 20), Unit: "MiB", Met: cb.OutBytes <= p.OutBytes,
			Note: fmt.Sprintf("%.3f×; archive, index and manifest", float64(cb.OutBytes)/float64(max(1, p.OutBytes)))})
	}
	if p, ok := r.summary(bbPipelineSync, "backup"); ok {
		med, rounds := r.speedRatio(bbPipelineSync)
		r.Targets = append(r.Targets, bbTarget{Name: "backup vs the same, fsynced", Want: fmt.Sprintf("≥ 1× (%.1f MiB/s)", p.MiBps),
			Got: cb.MiBps, Unit: "MiB/s", Met: med >= 1, Note: ratioNote(med, rounds)})
	}
	if p, ok := r.summary(bbRestic, "backup"); ok {
		med, rounds := r.speedRatio(bbRestic)
		r.Targets = append(r.Targets, bbTarget{Name: "backup vs restic", Want: fmt.Sprintf("≥ %.1f× (%.1f MiB/s)", bbResticFactor, bbResticFactor*p.MiBps),
			Got: cb.MiBps, Unit: "MiB/s", Met: med >= bbResticFactor, Note: ratioNote(med, rounds)})
	}
	r.Targets = append(r.Targets, bbTarget{Name: "backup peak RSS", Want: fmt.Sprintf("≤ %d MiB", bbRSSLimitMiB),
		Got: cb.MaxRSSMiB, Unit: "MiB", Met: cb.MaxRSSMiB <= bbRSSLimitMiB, Note: "largest of the rounds; local target: no upload buffers"})
	if cr, ok := r.summary(bbCustos, "restore"); ok {
		r.Targets = append(r.Targets, bbTarget{Name: "restore peak RSS", Want: fmt.Sprintf("≤ %d MiB", bbRSSLimitMiB),
			Got: cr.MaxRSSMiB, Unit: "MiB", Met: cr.MaxRSSMiB <= bbRSSLimitMiB, Note: "largest of the rounds"})
	}
}

func bbMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func printBenchBackup(w io.Writer, r *bbResult) {
	fmt.Fprintf(w, "%d CPUs; %d interleaved rounds per corpus (figures: medians; speed range in brackets)\n", r.CPUs, r.Rounds)
	fmt.Fprintf(w, "peak RSS: %s\n", r.RSSSource)
	for _, v := range r.Versions {
		fmt.Fprintf(w, "  %s\n", v)
	}
	for _, c := range r.Corpora {
		fmt.Fprintf(w, "\ncorpus %q: %d files, %.1f MiB\n  %s\n", c.Corpus.Name, c.Corpus.Files, float64(c.Corpus.Bytes)/(1<<20), c.Corpus.About)
		fmt.Fprintf(w, "%-13s %-8s %8s %8s %17s %7s %10s %10s %11s %6s\n", "tool", "phase", "seconds", "MiB/s", "(min-max)", "CPU s", "peak RSS", "sum RSS", "stored", "ratio")
		for _, x := range c.Summary {
			if x.Skipped != "" {
				fmt.Fprintf(w, "%-13s %-8s skipped: %s\n", x.Tool, x.Phase, x.Skipped)
				continue
			}
			sum, stored, ratio := "-", "-", "-"
			if x.Procs > 1 {
				sum = bbMiB(int64(x.SumRSSMiB * (1 << 20)))
			}
			if x.Phase == "backup" && x.OutBytes > 0 {
				stored, ratio = bbMiB(x.OutBytes), fmt.Sprintf("%.3f", x.Ratio)
			}
			fmt.Fprintf(w, "%-13s %-8s %8.2f %8.1f %17s %7.2f %10s %10s %11s %6s\n", x.Tool, x.Phase, x.Seconds, x.MiBps,
				fmt.Sprintf("(%.1f-%.1f)", x.MinMiBps, x.MaxMiBps), x.CPUSeconds, bbMiB(int64(x.MaxRSSMiB*(1<<20))), sum, stored, ratio)
		}
		if cb, ok := c.summary(bbCustos, "backup"); ok && cb.ArchiveBytes > 0 {
			fmt.Fprintf(w, "custos stored: archive %s, index %s, manifest and the target's metadata %d B\n", bbMiB(cb.ArchiveBytes), bbMiB(cb.IndexBytes),
				cb.OutBytes-cb.ArchiveBytes-cb.IndexBytes)
		}
		if len(c.Targets) > 0 {
			fmt.Fprintln(w, "targets:")
			for _, t := range c.Targets {
				met := "MET"
				if !t.Met {
					met = "NOT MET"
				}
				note := ""
				if t.Note != "" {
					note = " (" + t.Note + ")"
				}
				fmt.Fprintf(w, "  %-26s want %-22s got %.1f %s%s  %s\n", t.Name, t.Want, t.Got, t.Unit, note, met)
			}
		}
	}
}

func writeBenchBackup(path string, r *bbResult) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// bbEnv is what every round needs.
type bbEnv struct {
	bin, env, wd   string
	ageKey, agePub string // "" without age
}

func devBenchBackup(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("dev bench-backup", flag.ContinueOnError)
	dir := fs.String("dir", ".custos-dev", "the directory of a running `custos dev up` cluster (its env file is the agent's)")
	mb := fs.Int64("mb", 1024, "generated corpus size in MiB")
	textMB := fs.Int64("text-mb", 320, "text corpus size in MiB (0: no text corpus)")
	textSrc := fs.String("text-sources", "", "comma-separated directories the text corpus is copied from (default: $GOROOT/src, /usr/include, /usr/share/doc, /usr/share/common-licenses, /usr/share/man)")
	rounds := fs.Int("rounds", 3, "interleaved rounds of every tool per corpus")
	results := fs.String("results", "bench-results/backup.json", "write the results to this JSON file (\"\": none)")
	work := fs.String("work", "", "working directory for corpus, targets and restores (default: a temporary directory, removed)")
	custosBin := fs.String("custos", "", "custos binary to run (default: this one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *rounds < 1 {
		return usagef("--rounds %d: want at least 1", *rounds)
	}
	env, err := filepath.Abs(filepath.Join(*dir, "env"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(env); err != nil {
		return fmt.Errorf("no cluster env file (run custos dev up --dir %s first): %w", *dir, err)
	}
	e := bbEnv{bin: *custosBin, env: env}
	if e.bin == "" {
		if e.bin, err = os.Executable(); err != nil {
			return err
		}
	}
	wd := *work
	if wd == "" {
		if wd, err = os.MkdirTemp("", "custos-bench-backup-"); err != nil {
			return err
		}
		defer os.RemoveAll(wd)
	} else if err := os.MkdirAll(wd, 0o755); err != nil {
		return err
	}
	if e.wd, err = filepath.Abs(wd); err != nil {
		return err
	}
	r := &bbResult{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), Rounds: *rounds}
	r.Host, _ = os.Hostname()
	r.RSSSource = "rusage ru_maxrss of each child (includes this process's RSS at fork: an upper bound)"
	if bbTimePath != "" {
		r.RSSSource = bbTimePath + " -f %M around each process"
	}
	r.Versions = append(toolVersions(ctx), "custos: compresses with "+archive.Compressor)
	if err := e.ageKeys(ctx); err != nil {
		return err
	}

	type corpusSpec struct {
		name string
		make func(dir string) (benchcorpus.Corpus, error)
	}
	specs := []corpusSpec{{"generated", func(d string) (benchcorpus.Corpus, error) { return benchcorpus.Generate(d, *mb<<20) }}}
	if *textMB > 0 {
		sources := benchcorpus.TextSources(goRoot(ctx))
		if *textSrc != "" {
			sources = strings.Split(*textSrc, ",")
		}
		specs = append(specs, corpusSpec{"text", func(d string) (benchcorpus.Corpus, error) { return benchcorpus.Text(d, *textMB<<20, sources) }})
	}
	for _, spec := range specs {
		corpus := filepath.Join(e.wd, "corpus-"+spec.name)
		fmt.Fprintf(w, "making the %s corpus in %s\n", spec.name, corpus)
		c, err := spec.make(corpus)
		if err != nil {
			return fmt.Errorf("%s corpus: %w", spec.name, err)
		}
		cr := &bbCorpusResult{Corpus: c}
		r.Corpora = append(r.Corpora, cr)
		fmt.Fprintf(w, "  %d files, %.1f MiB: %s\n", c.Files, float64(c.Bytes)/(1<<20), c.About)
		if err := e.benchCorpus(ctx, w, cr, corpus, *rounds); err != nil {
			return err
		}
		cr.evaluate()
		os.RemoveAll(corpus)
	}
	printBenchBackup(w, r)
	if *results != "" {
		if err := writeBenchBackup(*results, r); err != nil {
			return err
		}
		fmt.Fprintf(w, "results written to %s\n", *results)
	}
	return nil
}

// goRoot is `go env GOROOT`, or runtime.GOROOT's guess without a go command.
func goRoot(ctx context.Context) string {
	if out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return runtime.GOROOT()
}

// benchCorpus runs rounds of every tool's backup then restore on corpus,
// each round starting with the next tool, so that none always runs first.
func (e *bbEnv) benchCorpus(ctx context.Context, w io.Writer, cr *bbCorpusResult, corpus string, rounds int) error {
	// Warm the page cache equally for every tool.
	warm := exec.CommandContext(ctx, "tar", "-cf", "-", "-C", filepath.Dir(corpus), filepath.Base(corpus))
	warm.Stdout = io.Discard // not -f /dev/null: GNU tar would skip reading the files
	if _, _, err := bbMeasure(nil, warm); err != nil {
		fmt.Fprintf(w, "warming the cache: %v\n", err)
	}
	tools := []struct {
		name string
		run  func(context.Context, io.Writer, *bbCorpusResult, string, int) error
	}{{bbCustos, e.custos}, {bbPipeline, e.pipeline}, {bbRestic, e.restic}}
	for round := 1; round <= rounds; round++ {
		for i := range tools {
			t := tools[(i+round-1)%len(tools)]
			fmt.Fprintf(w, "  round %d: %s …\n", round, t.name)
			if err := t.run(ctx, w, cr, corpus, round); err != nil {
				return fmt.Errorf("%s, round %d: %w", t.name, round, err)
			}
		}
	}
	return nil
}

// custos times `custos backup run` to a local target and `custos backup
// restore` of the archive it made.
func (e *bbEnv) custos(ctx context.Context, w io.Writer, cr *bbCorpusResult, corpus string, round int) error {
	tdir := filepath.Join(e.wd, "target")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tdir)
	pol := filepath.Join(e.wd, "policy.toml")
	if err := os.WriteFile(pol, fmt.Appendf(nil, `region = "DE"

[[dataset]]
name           = "bench"
paths          = [%q]
classification = "internal"
residency      = "eu-only"
kek            = "demo"
retention      = "1d"
rpo            = "24h"
rto            = "4h"

[[target]]
name         = "local"
kind         = "local"
region       = "DE"
jurisdiction = "DE"
path         = %q
`, corpus, tdir), 0o600); err != nil {
		return err
	}
	var out bytes.Buffer
	c := exec.CommandContext(ctx, e.bin, "backup", "run", "--policy", pol, "--dataset", "bench", "--env", e.env, "--progress", "none")
	c.Stdout = &out
	d, rss, err := bbMeasure(nil, c)
	if err != nil {
		return err
	}
	run := cr.add(bbCustos, "backup", round, d, rss, agent.SourceBytes([]string{tdir}))
	filepath.WalkDir(tdir, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				switch {
				case strings.HasSuffix(p, agent.SuffixIndex):
					run.IndexBytes += fi.Size()
				case strings.HasSuffix(p, agent.SuffixArchive):
					run.ArchiveBytes += fi.Size()
				}
			}
		}
		return nil
	})
	archiveID := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "archive" {
			archiveID = f[1]
			break
		}
	}
	if archiveID == "" {
		return fmt.Errorf("no archive id in the output of backup run:\n%s", out.String())
	}
	rdir := filepath.Join(e.wd, "restore-custos")
	defer os.RemoveAll(rdir)
	c = exec.CommandContext(ctx, e.bin, "backup", "restore", archiveID, "--to", rdir, "--policy", pol, "--env", e.env, "--progress", "none")
	c.Stdout = io.Discard
	if d, rss, err = bbMeasure(nil, c); err != nil {
		return err
	}
	cr.add(bbCustos, "restore", round, d, rss, agent.SourceBytes([]string{rdir}))
	return nil
}

func toolVersions(ctx context.Context) []string {
	var v []string
	for _, c := range [][]string{{"tar", "--version"}, {"zstd", "--version"}, {"age", "--version"}, {"restic", "version"}} {
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).Output()
		if err == nil {
			v = append(v, c[0]+": "+strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
		}
	}
	return v
}

// ageKeys makes the pipeline's X25519 key, if tar, zstd and age are there.
func (e *bbEnv) ageKeys(ctx context.Context) error {
	for _, b := range []string{"tar", "zstd", "age", "age-keygen"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil
		}
	}
	key := filepath.Join(e.wd, "age.key")
	if err := exec.CommandContext(ctx, "age-keygen", "-o", key).Run(); err != nil {
		return fmt.Errorf("age-keygen: %w", err)
	}
	pub, err := exec.CommandContext(ctx, "age-keygen", "-y", key).Output()
	if err != nil {
		return fmt.Errorf("age-keygen -y: %w", err)
	}
	e.ageKey, e.agePub = key, strings.TrimSpace(string(pub))
	return nil
}

// pipeline times tar | zstd -1 -T0 | age and back.
func (e *bbEnv) pipeline(ctx context.Context, w io.Writer, cr *bbCorpusResult, corpus string, round int) error {
	if e.ageKey == "" {
		if round == 1 {
			cr.skip(bbPipeline, "backup", "tar, zstd, age or age-keygen not found")
		}
		return nil
	}
	arc := filepath.Join(e.wd, "corpus.tar.zst.age")
	defer os.Remove(arc)
	f, err := os.Create(arc)
	if err != nil {
		return err
	}
	cmds := []*exec.Cmd{
		exec.CommandContext(ctx, "tar", "-cf", "-", "-C", filepath.Dir(corpus), filepath.Base(corpus)),
		exec.CommandContext(ctx, "zstd", "-1", "-T0", "-q", "-c"),
		exec.CommandContext(ctx, "age", "-r", e.agePub),
	}
	pipes, err := bbPipe(cmds...)
	if err != nil {
		f.Close()
		return err
	}
	cmds[2].Stdout = f
	d, rss, err := bbMeasure(pipes, cmds...)
	f.Close()
	if err != nil {
		return err
	}
	fi, err := os.Stat(arc)
	if err != nil {
		return err
	}
	cpu := bbLastCPU
	cr.add(bbPipeline, "backup", round, d, rss, fi.Size())
	// The same run with its output made durable, as custos's is: fsync
	// the file (not bbMeasure, whose sync(2) would do it untimed).
	start := time.Now()
	if f, err := os.Open(arc); err == nil {
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", arc, err)
		}
	}
	bbLastCPU = cpu
	cr.add(bbPipelineSync, "backup", round, d+time.Since(start), rss, fi.Size())

	rdir := filepath.Join(e.wd, "restore-tar")
	defer os.RemoveAll(rdir)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	cmds = []*exec.Cmd{
		exec.CommandContext(ctx, "age", "-d", "-i", e.ageKey, arc),
		exec.CommandContext(ctx, "zstd", "-d", "-q", "-c"),
		exec.CommandContext(ctx, "tar", "-xf", "-", "-C", rdir),
	}
	if pipes, err = bbPipe(cmds...); err != nil {
		return err
	}
	d, rss, err = bbMeasure(pipes, cmds...)
	if err != nil {
		return err
	}
	cr.add(bbPipeline, "restore", round, d, rss, agent.SourceBytes([]string{rdir}))
	return nil
}

// restic times restic backup into a fresh repository and restic restore.
func (e *bbEnv) restic(ctx context.Context, w io.Writer, cr *bbCorpusResult, corpus string, round int) error {
	if _, err := exec.LookPath("restic"); err != nil {
		if round == 1 {
			cr.skip(bbRestic, "backup", "restic not found")
		}
		return nil
	}
	repo := filepath.Join(e.wd, "restic-repo")
	defer os.RemoveAll(repo)
	env := append(os.Environ(), "RESTIC_PASSWORD=custos-bench", "RESTIC_REPOSITORY="+repo, "RESTIC_CACHE_DIR="+filepath.Join(e.wd, "restic-cache"))
	defer os.RemoveAll(filepath.Join(e.wd, "restic-cache"))
	cmd := func(args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, "restic", args...)
		c.Env = env
		c.Stdout = io.Discard
		return c
	}
	if _, _, err := bbMeasure(nil, cmd("init")); err != nil {
		return err
	}
	d, rss, err := bbMeasure(nil, cmd("backup", "-q", corpus))
	if err != nil {
		return err
	}
	cr.add(bbRestic, "backup", round, d, rss, agent.SourceBytes([]string{repo}))
	rdir := filepath.Join(e.wd, "restore-restic")
	defer os.RemoveAll(rdir)
	if d, rss, err = bbMeasure(nil, cmd("restore", "latest", "--target", rdir)); err != nil {
		return err
	}
	cr.add(bbRestic, "restore", round, d, rss, agent.SourceBytes([]string{rdir}))
	return nil
}
