package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/benchcorpus"
)

func TestBenchBackupReport(t *testing.T) {
	c := &bbCorpusResult{Corpus: benchcorpus.Corpus{Name: "generated", About: "generated: test", Bytes: 100 << 20, Files: 10, TextBytes: 80 << 20, RandomBytes: 20 << 20}}
	// Two rounds: custos 100 then 50 MiB/s, the pipeline 50 then 40, restic 25 then 25.
	cb := c.add(bbCustos, "backup", 1, time.Second, []int64{40 << 10}, 30<<20)
	cb.ArchiveBytes, cb.IndexBytes = 29<<20, 1<<20-100
	c.add(bbCustos, "restore", 1, 2*time.Second, []int64{70 << 10}, 100<<20)
	c.add(bbPipeline, "backup", 1, 2*time.Second, []int64{10 << 10, 20 << 10, 5 << 10}, 31<<20)
	c.add(bbRestic, "backup", 1, 4*time.Second, []int64{60 << 10}, 35<<20)
	c.add(bbRestic, "backup", 2, 4*time.Second, []int64{60 << 10}, 35<<20)
	c.add(bbPipeline, "backup", 2, 2500*time.Millisecond, []int64{10 << 10, 20 << 10, 5 << 10}, 31<<20)
	c.add(bbPipelineSync, "backup", 1, 3*time.Second, []int64{10 << 10, 20 << 10, 5 << 10}, 31<<20)
	cb = c.add(bbCustos, "backup", 2, 2*time.Second, []int64{50 << 10}, 30<<20)
	cb.ArchiveBytes, cb.IndexBytes = 29<<20, 1<<20-100
	c.evaluate()

	want := map[string]bool{"backup vs tar|zstd -1|age": true, "stored vs tar|zstd -1|age": true, "backup vs the same, fsynced": true,
		"backup vs restic": true, "backup peak RSS": true, "restore peak RSS": false}
	if len(c.Targets) != len(want) {
		t.Fatalf("targets %+v", c.Targets)
	}
	for _, tg := range c.Targets {
		if met, ok := want[tg.Name]; !ok || met != tg.Met {
			t.Errorf("target %+v, want met=%v", tg, met)
		}
	}
	// Medians over the rounds; RSS the largest; speed ratios paired by round
	// (2.00 and 1.25 against the pipeline, 4.00 and 2.00 against restic).
	if s, _ := c.summary(bbCustos, "backup"); s.Rounds != 2 || s.MiBps != 75 || s.MinMiBps != 50 || s.MaxMiBps != 100 || s.MaxRSSMiB != 50 || s.Ratio != 0.3 {
		t.Errorf("custos summary %+v", s)
	}
	if s, _ := c.summary(bbPipeline, "backup"); s.MaxRSSMiB != 20 || s.SumRSSMiB != 35 || s.MiBps != 45 {
		t.Errorf("pipeline summary %+v", s)
	}
	if med, rounds := c.speedRatio(bbPipeline); med != 1.625 || len(rounds) != 2 || rounds[0] != 2 {
		t.Errorf("speed ratio %v %v", med, rounds)
	}
	if med, _ := c.speedRatio(bbRestic); med != 3 {
		t.Errorf("restic speed ratio %v", med)
	}
	if med, rounds := c.speedRatio(bbPipelineSync); med != 3 || len(rounds) != 1 { // round 1 only: 100 against 33.3
		t.Errorf("fsynced pipeline speed ratio %v %v", med, rounds)
	}

	r := &bbResult{CPUs: 2, Rounds: 2, RSSSource: "test", Corpora: []*bbCorpusResult{c}}
	var b bytes.Buffer
	printBenchBackup(&b, r)
	for _, s := range []string{`corpus "generated"`, "generated: test", "custos        backup", "35.0 MiB", "30.0 MiB  0.300", "(50.0-100.0)",
		"index 1.0 MiB, manifest and the target's metadata 100 B", "NOT MET", "(1.62×, median of rounds 2.00 1.25)  MET", "(3.00×, median of rounds 4.00 2.00)  MET"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "d", "backup.json")
	if err := writeBenchBackup(path, r); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var back bbResult
	if err := json.Unmarshal(data, &back); err != nil || len(back.Corpora) != 1 || len(back.Corpora[0].Runs) != 8 || back.Corpora[0].Runs[0].MiBps != 100 || back.Corpora[0].Summary[0].OutBytes != 30<<20 {
		t.Fatalf("json %v: %s", err, data)
	}
}

// A tool missing on the machine is reported once as skipped, and its
// targets are left out.
func TestBenchBackupSkipped(t *testing.T) {
	c := &bbCorpusResult{Corpus: benchcorpus.Corpus{Name: "text", Bytes: 10 << 20}}
	c.add(bbCustos, "backup", 1, time.Second, []int64{40 << 10}, 3<<20)
	c.skip(bbRestic, "backup", "restic not found")
	c.evaluate()
	if s := c.Summary[1]; s.Tool != bbRestic || s.Skipped != "restic not found" {
		t.Errorf("summary %+v", c.Summary)
	}
	for _, tg := range c.Targets {
		if strings.Contains(tg.Name, "restic") || strings.Contains(tg.Name, "zstd") {
			t.Errorf("target %+v without the tool", tg)
		}
	}
	var b bytes.Buffer
	printBenchBackup(&b, &bbResult{Corpora: []*bbCorpusResult{c}})
	if !strings.Contains(b.String(), "skipped: restic not found") {
		t.Errorf("table:\n%s", b.String())
	}
}
