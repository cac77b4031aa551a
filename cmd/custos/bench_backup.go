package main

// `custos dev bench-backup`: backup and restore throughput and peak RSS of
// `custos backup run|restore` against a dev cluster, side by side with
// `tar | zstd -1 | age` and `restic` on the same generated corpus.

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
	"strings"
	"syscall"
	"time"

	"github.com/custos-eu/custos/internal/benchcorpus"
)

// bbRun is one timed tool run.
type bbRun struct {
	Tool    string  `json:"tool"`  // custos, tar|zstd|age, restic
	Phase   string  `json:"phase"` // backup, restore
	Seconds float64 `json:"seconds"`
	MiBps   float64 `json:"mib_per_s"`
	// MaxRSSMiB is the largest peak RSS of the run's processes;
	// SumRSSMiB their sum (for a pipeline, whose processes run at once).
	MaxRSSMiB float64 `json:"max_rss_mib"`
	SumRSSMiB float64 `json:"sum_rss_mib"`
	Procs     int     `json:"processes"`
	OutBytes  int64   `json:"output_bytes,omitempty"`
	// CPUSeconds is user+system time of all the run's processes.
	CPUSeconds float64 `json:"cpu_seconds"`
	Skipped    string  `json:"skipped,omitempty"`
}

type bbTarget struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
	Note string  `json:"note,omitempty"`
}

type bbResult struct {
	Started  time.Time          `json:"started"`
	Host     string             `json:"host"`
	CPUs     int                `json:"cpus"`
	Corpus   benchcorpus.Corpus `json:"corpus"`
	Runs     []bbRun            `json:"runs"`
	Targets  []bbTarget         `json:"targets"`
	Versions []string           `json:"versions,omitempty"`
	// RSSSource says how peak RSS was measured.
	RSSSource string `json:"rss_source"`
}

// bbMeasure starts cmds (already wired together), waits for all, and
// returns the wall time and the peak RSS (KiB) of each. It fails if any
// exits non-zero, with its stderr. The parent's copies of the pipe ends
// (from bbPipeline) are closed once all have started.
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

// bbPipeline wires cmds stdout→stdin with OS pipes; first's stdin and
// last's stdout are left to the caller.
func bbPipeline(cmds ...*exec.Cmd) ([]*os.File, error) {
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

func (r *bbResult) add(tool, phase string, d time.Duration, rss []int64, out int64) bbRun {
	run := bbRun{Tool: tool, Phase: phase, Seconds: d.Seconds(), Procs: len(rss), OutBytes: out, CPUSeconds: bbLastCPU}
	if d > 0 {
		run.MiBps = float64(r.Corpus.Bytes) / (1 << 20) / d.Seconds()
	}
	for _, k := range rss {
		m := float64(k) / 1024
		run.SumRSSMiB += m
		run.MaxRSSMiB = max(run.MaxRSSMiB, m)
	}
	r.Runs = append(r.Runs, run)
	return run
}

func (r *bbResult) run(tool, phase string) (bbRun, bool) {
	for _, x := range r.Runs {
		if x.Tool == tool && x.Phase == phase && x.Skipped == "" {
			return x, true
		}
	}
	return bbRun{}, false
}

// bbRSSLimitMiB is the target peak RSS of custos backup run and restore
// (a local target: no upload buffers).
const bbRSSLimitMiB = 64

// evaluate sets the targets from the runs.
func (r *bbResult) evaluate() {
	r.Targets = nil
	cb, ok := r.run("custos", "backup")
	if !ok {
		return
	}
	if p, ok := r.run("tar|zstd|age", "backup"); ok {
		r.Targets = append(r.Targets, bbTarget{Name: "backup vs tar|zstd -1|age", Want: fmt.Sprintf("≥ %.1f MiB/s (1×)", p.MiBps),
			Got: cb.MiBps, Unit: "MiB/s", Met: cb.MiBps >= p.MiBps, Note: fmt.Sprintf("%.2f×", cb.MiBps/p.MiBps)})
	}
	if p, ok := r.run("restic", "backup"); ok {
		r.Targets = append(r.Targets, bbTarget{Name: "backup vs restic", Want: fmt.Sprintf("≥ %.1f MiB/s (2×)", 2*p.MiBps),
			Got: cb.MiBps, Unit: "MiB/s", Met: cb.MiBps >= 2*p.MiBps, Note: fmt.Sprintf("%.2f×", cb.MiBps/p.MiBps)})
	}
	r.Targets = append(r.Targets, bbTarget{Name: "backup peak RSS", Want: fmt.Sprintf("≤ %d MiB", bbRSSLimitMiB),
		Got: cb.MaxRSSMiB, Unit: "MiB", Met: cb.MaxRSSMiB <= bbRSSLimitMiB, Note: "local target: no upload buffers"})
	if cr, ok := r.run("custos", "restore"); ok {
		r.Targets = append(r.Targets, bbTarget{Name: "restore peak RSS", Want: fmt.Sprintf("≤ %d MiB", bbRSSLimitMiB),
			Got: cr.MaxRSSMiB, Unit: "MiB", Met: cr.MaxRSSMiB <= bbRSSLimitMiB})
	}
}

func printBenchBackup(w io.Writer, r *bbResult) {
	fmt.Fprintf(w, "corpus: %d files, %.1f MiB (%.0f%% text, %.0f%% random); %d CPUs\n",
		r.Corpus.Files, float64(r.Corpus.Bytes)/(1<<20),
		100*float64(r.Corpus.TextBytes)/float64(max(1, r.Corpus.TextBytes+r.Corpus.RandomBytes)),
		100*float64(r.Corpus.RandomBytes)/float64(max(1, r.Corpus.TextBytes+r.Corpus.RandomBytes)), r.CPUs)
	fmt.Fprintf(w, "peak RSS: %s\n", r.RSSSource)
	fmt.Fprintf(w, "%-14s %-8s %9s %10s %8s %12s %12s %10s\n", "tool", "phase", "seconds", "MiB/s", "CPU s", "peak RSS", "sum RSS", "output")
	for _, x := range r.Runs {
		if x.Skipped != "" {
			fmt.Fprintf(w, "%-14s %-8s skipped: %s\n", x.Tool, x.Phase, x.Skipped)
			continue
		}
		out := "-"
		if x.OutBytes > 0 {
			out = fmt.Sprintf("%.1f MiB", float64(x.OutBytes)/(1<<20))
		}
		sum := "-"
		if x.Procs > 1 {
			sum = fmt.Sprintf("%.1f MiB", x.SumRSSMiB)
		}
		fmt.Fprintf(w, "%-14s %-8s %9.2f %10.1f %8.2f %8.1f MiB %12s %10s\n", x.Tool, x.Phase, x.Seconds, x.MiBps, x.CPUSeconds, x.MaxRSSMiB, sum, out)
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "targets:")
		for _, t := range r.Targets {
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

func devBenchBackup(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("dev bench-backup", flag.ContinueOnError)
	dir := fs.String("dir", ".custos-dev", "the directory of a running `custos dev up` cluster (its env file is the agent's)")
	mb := fs.Int64("mb", 1024, "corpus size in MiB")
	results := fs.String("results", "bench-results/backup.json", "write the results to this JSON file (\"\": none)")
	work := fs.String("work", "", "working directory for corpus, targets and restores (default: a temporary directory, removed)")
	custosBin := fs.String("custos", "", "custos binary to run (default: this one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	env, err := filepath.Abs(filepath.Join(*dir, "env"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(env); err != nil {
		return fmt.Errorf("no cluster env file (run custos dev up --dir %s first): %w", *dir, err)
	}
	bin := *custosBin
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
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
	if wd, err = filepath.Abs(wd); err != nil {
		return err
	}
	r := &bbResult{Started: time.Now().UTC(), CPUs: runtime.NumCPU()}
	r.Host, _ = os.Hostname()
	r.RSSSource = "rusage ru_maxrss of each child (includes this process's RSS at fork: an upper bound)"
	if bbTimePath != "" {
		r.RSSSource = bbTimePath + " -f %M around each process"
	}

	corpus := filepath.Join(wd, "corpus")
	fmt.Fprintf(w, "generating a %d MiB corpus in %s\n", *mb, corpus)
	if r.Corpus, err = benchcorpus.Generate(corpus, *mb<<20); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	// Warm the page cache equally for every tool.
	warm := exec.CommandContext(ctx, "tar", "-cf", "-", "-C", wd, "corpus")
	warm.Stdout = io.Discard // not -f /dev/null: GNU tar would skip reading the files
	if _, _, err := bbMeasure(nil, warm); err != nil {
		fmt.Fprintf(w, "warming the cache: %v\n", err)
	}

	// (a) custos backup run / restore.
	tdir := filepath.Join(wd, "target")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return err
	}
	pol := filepath.Join(wd, "policy.toml")
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
	fmt.Fprintln(w, "custos backup run …")
	var out bytes.Buffer
	c := exec.CommandContext(ctx, bin, "backup", "run", "--policy", pol, "--dataset", "bench", "--env", env)
	c.Stdout = &out
	d, rss, err := bbMeasure(nil, c)
	if err != nil {
		return err
	}
	r.add("custos", "backup", d, rss, sourceBytes([]string{tdir}))
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
	rdir := filepath.Join(wd, "restore-custos")
	fmt.Fprintln(w, "custos backup restore …")
	c = exec.CommandContext(ctx, bin, "backup", "restore", archiveID, "--to", rdir, "--policy", pol, "--env", env)
	c.Stdout = io.Discard
	if d, rss, err = bbMeasure(nil, c); err != nil {
		return err
	}
	r.add("custos", "restore", d, rss, sourceBytes([]string{rdir}))
	os.RemoveAll(rdir)
	os.RemoveAll(tdir)

	// (b) tar | zstd -1 -T0 | age.
	if err := benchTarPipeline(ctx, w, r, wd); err != nil {
		return err
	}
	// (c) restic.
	if err := benchRestic(ctx, w, r, wd); err != nil {
		return err
	}

	r.Versions = toolVersions(ctx)
	r.evaluate()
	printBenchBackup(w, r)
	if *results != "" {
		if err := writeBenchBackup(*results, r); err != nil {
			return err
		}
		fmt.Fprintf(w, "results written to %s\n", *results)
	}
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

func benchTarPipeline(ctx context.Context, w io.Writer, r *bbResult, wd string) error {
	const tool = "tar|zstd|age"
	for _, b := range []string{"tar", "zstd", "age", "age-keygen"} {
		if _, err := exec.LookPath(b); err != nil {
			r.Runs = append(r.Runs, bbRun{Tool: tool, Phase: "backup", Skipped: b + " not found"})
			return nil
		}
	}
	key := filepath.Join(wd, "age.key")
	if err := exec.CommandContext(ctx, "age-keygen", "-o", key).Run(); err != nil {
		return fmt.Errorf("age-keygen: %w", err)
	}
	pub, err := exec.CommandContext(ctx, "age-keygen", "-y", key).Output()
	if err != nil {
		return fmt.Errorf("age-keygen -y: %w", err)
	}
	arc := filepath.Join(wd, "corpus.tar.zst.age")
	f, err := os.Create(arc)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "tar | zstd -1 -T0 | age …")
	cmds := []*exec.Cmd{
		exec.CommandContext(ctx, "tar", "-cf", "-", "-C", wd, "corpus"),
		exec.CommandContext(ctx, "zstd", "-1", "-T0", "-q", "-c"),
		exec.CommandContext(ctx, "age", "-r", strings.TrimSpace(string(pub))),
	}
	pipes, err := bbPipeline(cmds...)
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
	fi, _ := os.Stat(arc)
	r.add(tool, "backup", d, rss, fi.Size())

	rdir := filepath.Join(wd, "restore-tar")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	fmt.Fprintln(w, "age -d | zstd -d | tar -x …")
	cmds = []*exec.Cmd{
		exec.CommandContext(ctx, "age", "-d", "-i", key, arc),
		exec.CommandContext(ctx, "zstd", "-d", "-q", "-c"),
		exec.CommandContext(ctx, "tar", "-xf", "-", "-C", rdir),
	}
	if pipes, err = bbPipeline(cmds...); err != nil {
		return err
	}
	d, rss, err = bbMeasure(pipes, cmds...)
	if err != nil {
		return err
	}
	r.add(tool, "restore", d, rss, sourceBytes([]string{rdir}))
	os.RemoveAll(rdir)
	os.Remove(arc)
	return nil
}

func benchRestic(ctx context.Context, w io.Writer, r *bbResult, wd string) error {
	const tool = "restic"
	if _, err := exec.LookPath("restic"); err != nil {
		r.Runs = append(r.Runs, bbRun{Tool: tool, Phase: "backup", Skipped: "restic not found"})
		return nil
	}
	repo := filepath.Join(wd, "restic-repo")
	env := append(os.Environ(), "RESTIC_PASSWORD=custos-bench", "RESTIC_REPOSITORY="+repo, "RESTIC_CACHE_DIR="+filepath.Join(wd, "restic-cache"))
	cmd := func(args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, "restic", args...)
		c.Env = env
		c.Stdout = io.Discard
		return c
	}
	if _, _, err := bbMeasure(nil, cmd("init")); err != nil {
		return err
	}
	fmt.Fprintln(w, "restic backup …")
	d, rss, err := bbMeasure(nil, cmd("backup", "-q", filepath.Join(wd, "corpus")))
	if err != nil {
		return err
	}
	r.add(tool, "backup", d, rss, sourceBytes([]string{repo}))
	rdir := filepath.Join(wd, "restore-restic")
	fmt.Fprintln(w, "restic restore …")
	if d, rss, err = bbMeasure(nil, cmd("restore", "latest", "--target", rdir)); err != nil {
		return err
	}
	r.add(tool, "restore", d, rss, sourceBytes([]string{rdir}))
	os.RemoveAll(rdir)
	os.RemoveAll(repo)
	return nil
}
