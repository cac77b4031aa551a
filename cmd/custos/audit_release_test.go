package main

// Activations and share releases in watch and the custody report.

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/audit/audittest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Entries and InclusionProof make a fakeSource a logSource.
func (s *fakeSource) Entries(_ context.Context, start uint64, limit int) ([][]byte, error) {
	end := min(start+uint64(limit), uint64(len(s.Log.Entries)))
	if start >= end {
		return nil, nil
	}
	out := slices.Clone(s.Log.Entries[start:end])
	for i := range out {
		if d, ok := s.doctored[start+uint64(i)]; ok {
			out[i] = d
		}
	}
	return out, nil
}

func (s *fakeSource) InclusionProof(_ context.Context, index, size uint64) (ledger.InclusionProof, error) {
	p, err := tlog.ProveRecord(int64(size), int64(index), tlog.HashReaderFunc(s.Read))
	return ledger.InclusionProof{Index: index, Size: size, Hashes: p}, err
}

func num(i uint64) string { return strconv.FormatUint(i, 10) }

func TestAuditWatchReleases(t *testing.T) {
	c := audittest.NewClient(t, "test", "backup")
	for _, tc := range []struct {
		name  string
		build func(f *audittest.Log) // entries after the pin
		alert []string               // "" if the poll passes
	}{
		{"valid", func(f *audittest.Log) {
			a, req := f.Activate(t, c)
			f.Release(t, "n2", num(a), req, c)
			f.Release(t, "n3", num(a), req, c)
		}, nil},
		{"no activation", func(f *audittest.Log) {
			a, req := f.Activate(t, c)
			f.Release(t, "n2", num(a), req, c)
			f.Release(t, "n3", "", req, c)
		}, []string{"ALERT: release_without_activation: entry 8: node n3 released its share of kek backups v1 to node n1"}},
		{"twice by one peer", func(f *audittest.Log) {
			a, req := f.Activate(t, c)
			f.Release(t, "n2", num(a), req, c)
			f.Release(t, "n2", num(a), req, c)
			f.Release(t, "n1", num(a), req, c)
		}, []string{"ALERT: release_duplicate: entry 8:", "ALERT: release_to_self: entry 9:"}},
		{"names a non-activation before the pin", func(f *audittest.Log) {
			f.Release(t, "n2", "2", "req-00000001", c)
		}, []string{"ALERT: release_activation_not_found: entry 6: node n2 released its share of kek backups v1 to node n1 naming entry 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := audittest.NewLog(t, "test", 6)
			tc.build(f)
			path := filepath.Join(t.TempDir(), "trust.json")
			if err := os.WriteFile(path, f.Trust(t, 6), 0o644); err != nil {
				t.Fatal(err)
			}
			var logged, out bytes.Buffer
			w, err := newWatcher(&fakeSource{Log: f, note: f.Checkpoint(t, len(f.Entries), nil)}, path, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			err = watchLoop(context.Background(), w, &out, time.Second, true)
			if tc.alert == nil {
				if err != nil || strings.Contains(out.String(), "ALERT") {
					t.Fatalf("poll: %v\n%s%s", err, out.String(), logged.String())
				}
			} else {
				if err == nil {
					t.Fatalf("poll passed; want %q\n%s", tc.alert, logged.String())
				}
				wantAll(t, "watch", out.String(), tc.alert...)
				for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
					if !strings.HasPrefix(l, "ALERT: ") {
						t.Errorf("output line %q is not an ALERT line", l)
					}
				}
			}
			// The log only grew: the pin moves either way.
			if got := readPin(t, path).Size; got != uint64(len(f.Entries)) {
				t.Errorf("pin at %d after the poll, want %d", got, len(f.Entries))
			}
		})
	}
}

func TestAuditWatchReleaseAcrossPin(t *testing.T) {
	// The activation is before the pin, its releases after: watch fetches
	// it, with its inclusion proof, to check them.
	c := audittest.NewClient(t, "test", "backup")
	f := audittest.NewLog(t, "test", 4)
	a, req := f.Activate(t, c)
	pin := len(f.Entries)
	f.Release(t, "n2", num(a), req, c)
	f.Release(t, "n3", num(a), req, c)
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, f.Trust(t, pin), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged, out bytes.Buffer
	src := &fakeSource{Log: f, note: f.Checkpoint(t, len(f.Entries), nil)}
	w, err := newWatcher(src, path, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := watchLoop(context.Background(), w, &out, time.Second, true); err != nil {
		t.Fatalf("poll: %v\n%s", err, out.String())
	}
	if got := w.releases.Counts(); got.Releases != 2 || got.Activations != 1 {
		t.Errorf("releases %+v, want the activation fetched and 2 releases checked", got)
	}
	// The next poll keeps what it followed: a release without activation
	// is now a finding.
	f.Release(t, "n2", "", req, c)
	src.note = f.Checkpoint(t, len(f.Entries), nil)
	out.Reset()
	if err := watchLoop(context.Background(), w, &out, time.Second, true); err == nil {
		t.Fatal("a release without activation passed")
	}
	wantAll(t, "watch", out.String(), "ALERT: release_without_activation: entry 7")
}

func TestAuditWatchDoctoredEntries(t *testing.T) {
	// Entries served that are not those of the signed checkpoint: an alert,
	// and the pin stays.
	c := audittest.NewClient(t, "test", "backup")
	f := audittest.NewLog(t, "test", 4)
	a, req := f.Activate(t, c)
	f.Release(t, "n2", num(a), req, c)
	e, err := ledger.ParseEntry(f.Entries[5])
	if err != nil {
		t.Fatal(err)
	}
	e.Details["activation"] = "1"
	doctored, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, f.Trust(t, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged, out bytes.Buffer
	w, err := newWatcher(&fakeSource{Log: f, note: f.Checkpoint(t, len(f.Entries), nil), doctored: map[uint64][]byte{5: doctored}}, path,
		slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := watchLoop(context.Background(), w, &out, time.Second, true); err == nil {
		t.Fatal("doctored entries passed")
	}
	wantAll(t, "watch", out.String(), "ALERT: the entries the cluster serves from 4 to 6 do not give the root")
	if got := readPin(t, path).Size; got != 4 {
		t.Errorf("pin at %d, want it kept at 4", got)
	}
}

func TestPrintVerifyFinding(t *testing.T) {
	i := uint64(42)
	var out bytes.Buffer
	printVerify(&out, verifyJSON{Pack: "p", Trust: "t", Failure: &failureJSON{Kind: audit.KindAuthorisation, Code: audit.CodeReleaseNoActivation, Index: &i, Message: "entry 42: …"}}, time.Second)
	wantAll(t, "verify", out.String(), "FAIL: entry 42 (authorisation, release_without_activation): entry 42: …")
	out.Reset()
	printVerify(&out, verifyJSON{Pack: "p", Trust: "t", Releases: &audit.ReleaseCounts{Activations: 2, Releases: 4, Unbound: 3}}, time.Second)
	wantAll(t, "verify", out.String(), "releases    4 share releases bound to 2 activations", "WARNING: 3 activations and share releases of the earlier format")
}
