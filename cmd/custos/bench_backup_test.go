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
	r := &bbResult{Corpus: benchcorpus.Corpus{Bytes: 100 << 20, Files: 10, TextBytes: 80 << 20, RandomBytes: 20 << 20}, RSSSource: "test"}
	r.add("custos", "backup", time.Second, []int64{40 << 10}, 1)
	r.add("custos", "restore", 2*time.Second, []int64{70 << 10}, 1)
	r.add("tar|zstd|age", "backup", 2*time.Second, []int64{10 << 10, 20 << 10, 5 << 10}, 1)
	r.add("restic", "backup", 4*time.Second, []int64{60 << 10}, 1)
	r.evaluate()
	want := map[string]bool{"backup vs tar|zstd -1|age": true, "backup vs restic": true, "backup peak RSS": true, "restore peak RSS": false}
	if len(r.Targets) != len(want) {
		t.Fatalf("targets %+v", r.Targets)
	}
	for _, tg := range r.Targets {
		if met, ok := want[tg.Name]; !ok || met != tg.Met {
			t.Errorf("target %+v, want met=%v", tg, met)
		}
	}
	if p, _ := r.run("tar|zstd|age", "backup"); p.MaxRSSMiB != 20 || p.SumRSSMiB != 35 || p.MiBps != 50 {
		t.Errorf("pipeline run %+v", p)
	}
	var b bytes.Buffer
	printBenchBackup(&b, r)
	for _, s := range []string{"custos         backup", "35.0 MiB", "NOT MET", "(2.00×)  MET", "(4.00×)  MET"} {
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
	if err := json.Unmarshal(data, &back); err != nil || len(back.Runs) != 4 || back.Runs[0].MiBps != 100 {
		t.Fatalf("json %v: %s", err, data)
	}
}
