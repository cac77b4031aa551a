package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/backup/s3"
	"github.com/custos-eu/custos/backup/s3/s3test"
	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// backupHarness is an in-memory cluster with KEK "backups", an agent's env
// file, a sample corpus and a policy file.
type backupHarness struct {
	t        *testing.T
	env      *agentcluster.Env
	dir      string
	agentEnv string
	src      string
	// retention of dataset "hr" in the policies writePolicy writes.
	retention string
}

func newBackupHarness(t *testing.T) *backupHarness {
	if testing.Short() {
		t.Skip("starts an in-memory cluster")
	}
	clearEnv(t)
	h := &backupHarness{t: t, env: agentcluster.New(t, "backups"), dir: t.TempDir(), retention: "90d"}
	h.agentEnv = h.writeEnv("agent-1", identity.RoleAgent)
	h.src = filepath.Join(h.dir, "data")
	writeCorpus(t, h.src)
	return h
}

func (h *backupHarness) writeEnv(name string, role identity.Role) string {
	files := h.env.PKI.Issue(h.t, role, name, "DE")
	return writeEnvFile(h.t, filepath.Join(h.dir, name+".env"),
		map[string]string{envAddr: strings.Join(h.env.URLs, ","), envCA: files.CA, envCert: files.Cert, envKey: files.Key})
}

// writePolicy writes a policy with dataset "hr" (residency) over h.src and
// the given [[target]] tables.
func (h *backupHarness) writePolicy(residency, targets string) string {
	p := fmt.Sprintf(`region = "DE"

[[dataset]]
name           = "hr"
paths          = [%q]
classification = "confidential"
residency      = %q
kek            = "backups"
retention      = %q
rpo            = "24h"
rto            = "4h"

%s`, h.src, residency, h.retention, targets)
	path := filepath.Join(h.dir, fmt.Sprintf("policy-%d.toml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(p), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return path
}

func localTarget(name, region, path string) string {
	return fmt.Sprintf(`[[target]]
name         = %q
kind         = "local"
region       = %q
jurisdiction = %q
path         = %q

`, name, region, region, path)
}

// cli runs custos and returns exit code, stdout and stderr.
func (h *backupHarness) cli(args ...string) (int, string, string) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	code := runStdio(context.Background(), stdio{in: strings.NewReader(""), out: &out, err: &errOut}, args)
	h.t.Logf("$ custos %s  [exit %d]\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func (h *backupHarness) ok(args ...string) string {
	h.t.Helper()
	code, out, errOut := h.cli(args...)
	if code != 0 {
		h.t.Fatalf("custos %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

var archiveIDRE = regexp.MustCompile(`(?m)^archive +(\d{8}T\d{6}Z-[0-9a-f]{16})$`)

// backup runs `backup run` and returns the archive id.
func (h *backupHarness) backup(pol string, extra ...string) string {
	h.t.Helper()
	out := h.ok(append([]string{"backup", "run", "--policy", pol, "--dataset", "hr", "--env", h.agentEnv}, extra...)...)
	m := archiveIDRE.FindStringSubmatch(out)
	if m == nil {
		h.t.Fatalf("no archive id in:\n%s", out)
	}
	return m[1]
}

// writeCorpus writes a small tree: text, random bytes, a subdirectory,
// an empty file and a symlink.
func writeCorpus(t *testing.T, dir string) {
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub", "deep"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "payroll.csv"), bytes.Repeat([]byte("alice,4200\nbob,3900\n"), 50000), 0o600))
	rnd := make([]byte, 1<<20)
	rand.Read(rnd)
	must(os.WriteFile(filepath.Join(dir, "sub", "blob.bin"), rnd, 0o640))
	must(os.WriteFile(filepath.Join(dir, "sub", "deep", "empty"), nil, 0o644))
	for i := range 50 {
		must(os.WriteFile(filepath.Join(dir, "sub", fmt.Sprintf("note-%02d.txt", i)), []byte(strings.Repeat(fmt.Sprintf("note %d\n", i), i+1)), 0o644))
	}
	must(os.Symlink("payroll.csv", filepath.Join(dir, "latest")))
}

// treeOf describes a tree: relative path → type, mode, content or link.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(path)
			tree[rel] = "link " + l
		case info.IsDir():
			tree[rel] = fmt.Sprintf("dir %v", info.Mode().Perm())
		default:
			b, _ := os.ReadFile(path)
			tree[rel] = fmt.Sprintf("file %v %s %x", info.Mode().Perm(), info.ModTime().UTC(), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func sameTree(t *testing.T, a, b string) {
	t.Helper()
	ta, tb := treeOf(t, a), treeOf(t, b)
	if len(ta) != len(tb) {
		t.Errorf("trees differ in size: %d vs %d entries", len(ta), len(tb))
	}
	for k, v := range ta {
		if k == "." {
			continue // the roots' own modes may differ
		}
		if tb[k] != v {
			w := tb[k]
			if len(w) > 80 {
				w = w[:80]
			}
			if len(v) > 80 {
				v = v[:80]
			}
			t.Errorf("%s: %q vs %q", k, v, w)
		}
	}
}

// logEntries reads the whole log as an auditor.
func (h *backupHarness) logEntries() []ledger.Entry {
	h.t.Helper()
	aud := h.env.Client(h.t, identity.RoleAuditor, "audit-1")
	var out []ledger.Entry
	for start := uint64(0); ; {
		raw, err := aud.Entries(context.Background(), start, 500)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(raw) == 0 {
			return out
		}
		for _, b := range raw {
			e, err := ledger.ParseEntry(b)
			if err != nil {
				h.t.Fatal(err)
			}
			out = append(out, e)
		}
		start = out[len(out)-1].Index + 1
	}
}

func (h *backupHarness) entriesOf(typ, archive string) []ledger.Entry {
	var out []ledger.Entry
	for _, e := range h.logEntries() {
		if e.Type == typ && e.Details["archive"] == archive {
			out = append(out, e)
		}
	}
	return out
}

func TestBackupCLI(t *testing.T) {
	h := newBackupHarness(t)
	store := filepath.Join(h.dir, "store")
	pol := h.writePolicy("eu-only", localTarget("paris", "FR", store))

	id := h.backup(pol)
	// The transfer is attested, with the ciphertext's hash and the reason.
	tr := h.entriesOf(client.AttestTransfer, id)
	if len(tr) != 1 {
		t.Fatalf("transfer entries for %s: %+v", id, tr)
	}
	if d := tr[0].Details; d["target"] != "paris" || d["region"] != "FR" || d["dataset"] != "hr" || len(d["sha256"]) != 64 || d["decision"] == "" {
		t.Errorf("transfer details %v", d)
	}
	// The manifest names no file and carries the receipt.
	mb, err := os.ReadFile(filepath.Join(store, "hr", id+".manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mb), "payroll") || !strings.Contains(string(mb), fmt.Sprintf(`"log_index": %d`, tr[0].Index)) {
		t.Errorf("manifest:\n%s", mb)
	}

	out := h.ok("backup", "list", "--policy", pol)
	wantAll(t, "list", out, id, "hr", "paris", fmt.Sprintf("transfer %d", tr[0].Index))
	var list struct {
		Archives []archiveJSON `json:"archives"`
	}
	decodeJSON(t, h.ok("backup", "list", "--policy", pol, "--format", "json"), &list)
	if len(list.Archives) != 1 || list.Archives[0].ArchiveID != id || list.Archives[0].Dataset != "hr" || list.Archives[0].Target != "paris" ||
		list.Archives[0].TransferLogIndex != tr[0].Index || list.Archives[0].WrapLogIndex == 0 || list.Archives[0].StoredBytes == 0 {
		t.Errorf("list --format json: %+v", list)
	}

	out = h.ok("backup", "verify", id, "--policy", pol, "--env", h.agentEnv)
	wantAll(t, "verify", out, "ok", "not decrypted", "matches the manifest", "the node keys the cluster serves")
	out = h.ok("backup", "verify", id, "--full", "--policy", pol, "--env", h.agentEnv)
	wantAll(t, "verify --full", out, "ok", "decrypted", "53 files")

	dst := filepath.Join(h.dir, "restored")
	out = h.ok("backup", "restore", id, "--to", dst, "--policy", pol, "--env", h.agentEnv)
	if os.Geteuid() == 0 && strings.Count(out, "running as root") != 1 {
		t.Errorf("a restore as root does not say once what it does not restore:\n%s", out)
	}
	sameTree(t, h.src, filepath.Join(dst, h.src))
	// Restoring again into the same place does not overwrite.
	if code, _, _ := h.cli("backup", "restore", id, "--to", dst, "--policy", pol, "--env", h.agentEnv); code == 0 {
		t.Error("restore over an existing tree succeeded")
	}

	// status, as the agent runs it from cron: the backup is fresh but no
	// drill has proved the RTO.
	code, out, errOut := h.cli("backup", "status", "--policy", pol, "--env", h.agentEnv)
	if code == 0 {
		t.Error("status without a drill exited 0")
	}
	wantAll(t, "status before drill", out+errOut, "backup   ok: newest "+id, "drill    MISSED: no drill", "1 target(s) missed")
	var st struct {
		Datasets []datasetStatusJSON `json:"datasets"`
		Missed   int                 `json:"missed"`
	}
	code, out, errOut = h.cli("backup", "status", "--policy", pol, "--env", h.agentEnv, "-o", "json")
	decodeJSON(t, out, &st)
	if code != 1 || !strings.Contains(errOut, "1 target(s) missed") || st.Missed != 1 || len(st.Datasets) != 1 ||
		!st.Datasets[0].BackupOK || st.Datasets[0].NewestArchive != id || st.Datasets[0].DrillOK || st.Datasets[0].Drill != nil || st.Datasets[0].RTOSeconds != 14400 {
		t.Errorf("status --format json before drill: exit %d, %+v, stderr %s", code, st, errOut)
	}

	out = h.ok("backup", "drill", id, "--policy", pol, "--env", h.agentEnv)
	wantAll(t, "drill", out, "ok", "RTO 4h0m0s", "recorded   log entry")
	dr := h.entriesOf(client.AttestDrill, id)
	if len(dr) != 1 || dr[0].Details["result"] != "ok" || dr[0].Details["restore_seconds"] == "" || dr[0].Details["dataset"] != "hr" ||
		dr[0].Details["rto_seconds"] != "14400" || dr[0].Details["target"] == "" {
		t.Fatalf("drill entries %+v", dr)
	}

	out = h.ok("backup", "status", "--policy", pol, "--env", h.agentEnv)
	wantAll(t, "status after drill", out, "drill    ok: last drill", "of "+id, "(RTO 4h0m0s)", fmt.Sprintf("log entry %d", dr[0].Index))
	st.Datasets = nil
	decodeJSON(t, h.ok("backup", "status", "--policy", pol, "--env", h.agentEnv, "--format", "json"), &st)
	if st.Missed != 0 || len(st.Datasets) != 1 || !st.Datasets[0].DrillOK || st.Datasets[0].Drill == nil ||
		st.Datasets[0].Drill.LogIndex != dr[0].Index || st.Datasets[0].Drill.Archive != id || st.Datasets[0].Drill.Result != "ok" {
		t.Errorf("status --format json after drill: %+v", st)
	}
	out = h.ok("backup", "status", "--policy", pol, "--dataset", "hr", "--env", h.writeEnv("audit-1", identity.RoleAuditor))
	wantAll(t, "status as auditor", out, "drill    ok: last drill", "of "+id)
	// The newest drill counts, whatever its result: a failed one is a miss.
	failed, err := h.env.Client(t, identity.RoleAgent, "agent-1").Attest(context.Background(), client.AttestRequest{Type: client.AttestDrill,
		Details: map[string]string{"archive": id, "dataset": "hr", "result": "failed: integrity check", "restore_seconds": "1.5"}})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = h.cli("backup", "status", "--policy", pol, "--env", h.agentEnv)
	if code == 0 {
		t.Error("status after a failed drill exited 0")
	}
	wantAll(t, "status after failed drill", out+errOut, "drill    MISSED: last drill", "failed: integrity check", fmt.Sprintf("log entry %d", failed), "1 target(s) missed")

	// A second backup lists after the first.
	id2 := h.backup(pol)
	out = h.ok("backup", "list", "--policy", pol, "--dataset", "hr")
	if i, j := strings.Index(out, id), strings.Index(out, id2); i < 0 || j < i {
		t.Errorf("list order:\n%s", out)
	}
}

func TestBackupRefusals(t *testing.T) {
	h := newBackupHarness(t)
	us := filepath.Join(h.dir, "us-store")
	pol := h.writePolicy("eu-only", localTarget("virginia", "US", us))
	code, _, errOut := h.cli("backup", "run", "--policy", pol, "--dataset", "hr", "--env", h.agentEnv)
	if code == 0 {
		t.Fatal("eu-only dataset went to a US target")
	}
	wantAll(t, "refusal", errOut, "refused by policy (residency)", "nothing was sent")
	if ents, err := os.ReadDir(us); err == nil && len(ents) > 0 {
		t.Errorf("refused backup left %v on the target", ents)
	}
	// A target the policy does not name, and an unknown dataset.
	if code, _, errOut := h.cli("backup", "run", "--policy", pol, "--dataset", "hr", "--target", "nowhere", "--env", h.agentEnv); code == 0 || !strings.Contains(errOut, "unknown_target") {
		t.Errorf("unknown target: exit %d, %s", code, errOut)
	}
	if code, _, errOut := h.cli("backup", "run", "--policy", pol, "--dataset", "payroll", "--env", h.agentEnv); code == 0 || !strings.Contains(errOut, "unknown_dataset") {
		t.Errorf("unknown dataset: exit %d, %s", code, errOut)
	}
	// Nothing attested.
	for _, e := range h.logEntries() {
		if e.Type == client.AttestTransfer {
			t.Errorf("a refused backup was attested: %+v", e)
		}
	}
	// The same dataset may go off-region when its residency allows.
	pol2 := h.writePolicy("encrypted-off-region-allowed", localTarget("virginia", "US", us))
	h.backup(pol2)
}

func TestBackupTampered(t *testing.T) {
	h := newBackupHarness(t)
	store := filepath.Join(h.dir, "store")
	pol := h.writePolicy("eu-only", localTarget("paris", "FR", store))
	id := h.backup(pol)

	obj := filepath.Join(store, "hr", id+".age")
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	os.Chmod(obj, 0o600)
	if err := os.WriteFile(obj, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"backup", "verify", id, "--policy", pol, "--env", h.agentEnv},
		{"backup", "verify", id, "--full", "--policy", pol, "--env", h.agentEnv},
	} {
		if code, _, errOut := h.cli(args...); code == 0 || !strings.Contains(errOut, "integrity") {
			t.Errorf("%v on a tampered archive: exit %d, %s", args, code, errOut)
		}
	}
	dst := filepath.Join(h.dir, "restored")
	if code, _, errOut := h.cli("backup", "restore", id, "--to", dst, "--policy", pol, "--env", h.agentEnv); code == 0 || !strings.Contains(errOut, "nothing was restored") {
		t.Errorf("restore of a tampered archive: exit %d, %s", code, errOut)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("tampered restore left %v", ents)
	}
	// A drill of it fails and is recorded as failed.
	if code, _, _ := h.cli("backup", "drill", id, "--policy", pol, "--env", h.agentEnv); code == 0 {
		t.Error("drill of a tampered archive succeeded")
	}
	if dr := h.entriesOf(client.AttestDrill, id); len(dr) != 1 || dr[0].Details["result"] != "failed: integrity check" {
		t.Errorf("failed drill entries %+v", dr)
	}
}

func TestBackupS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw and a cluster")
	}
	srv := s3test.Start(t)
	srv.CreateLockedBucket(t, "custos-archives")
	h := newBackupHarness(t)
	t.Setenv(envS3AccessKey, srv.AccessKey)
	t.Setenv(envS3SecretKey, srv.SecretKey)
	t.Setenv(envS3Region, srv.Region)
	pol := h.writePolicy("encrypted-off-region-allowed", fmt.Sprintf(`[[target]]
name         = "offsite"
kind         = "s3"
region       = "US"
jurisdiction = "US"
bucket       = "custos-archives"
prefix       = "eu1/"
endpoint     = %q
legal_hold   = true
[target.object_lock]
mode      = "GOVERNANCE"
retention = "1d"
`, srv.Endpoint))
	id := h.backup(pol)
	out := h.ok("backup", "list", "--policy", pol)
	wantAll(t, "list", out, id, "offsite")
	h.ok("backup", "verify", id, "--policy", pol, "--env", h.agentEnv)
	dst := filepath.Join(h.dir, "restored")
	h.ok("backup", "restore", id, "--to", dst, "--policy", pol, "--env", h.agentEnv)
	sameTree(t, h.src, filepath.Join(dst, h.src))
	h.ok("backup", "drill", id, "--policy", pol, "--env", h.agentEnv)

	// The objects are locked on the store.
	st, err := openTarget(context.Background(), mustTarget(t, pol, "offsite"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeTarget(st)

	// Past the dataset's retention, prune keeps what the store still locks.
	h.backup(pol)
	h.retention = "1s"
	pol1s := strings.Replace(pol, ".toml", "-1s.toml", 1)
	b, _ := os.ReadFile(pol)
	os.WriteFile(pol1s, bytes.Replace(b, []byte(`retention      = "90d"`), []byte(`retention      = "1s"`), 1), 0o600)
	time.Sleep(1100 * time.Millisecond)
	out = h.ok("backup", "prune", "--policy", pol1s, "--env", h.agentEnv)
	wantAll(t, "prune locked", out, id, "still locks it", "0 deleted, 2 kept")
	if pr := h.entriesOf(client.AttestPrune, id); len(pr) != 0 {
		t.Errorf("prune of a locked archive attested: %+v", pr)
	}
	for _, name := range []string{"hr/" + id + ".age", "hr/" + id + ".index.age", "hr/" + id + ".manifest.json"} {
		info, err := st.(*s3.Target).Stat(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Retention == nil || info.Retention.Mode != target.Governance || info.Retention.Until.Before(time.Now().Add(23*time.Hour)) || !info.LegalHold {
			t.Errorf("%s: retention %+v, legal hold %v", name, info.Retention, info.LegalHold)
		}
		if err := st.Delete(context.Background(), name); !errors.Is(err, target.ErrLocked) {
			t.Errorf("delete of locked %s: %v", name, err)
		}
	}
}

// TestBackupThroughput backs up and restores a generated corpus of
// $CUSTOS_BACKUP_BENCH_MB MiB (80% text, 20% random) and logs the rates.
func TestBackupThroughput(t *testing.T) {
	mbs, _ := strconv.Atoi(os.Getenv("CUSTOS_BACKUP_BENCH_MB"))
	if mbs <= 0 {
		t.Skip("set CUSTOS_BACKUP_BENCH_MB")
	}
	h := newBackupHarness(t)
	h.src = filepath.Join(h.dir, "corpus")
	const fileSize = 256 << 10
	line := []byte("2026-11-22T18:00:00Z INFO custos backup agent wrote archive for dataset hr to target paris\n")
	text := bytes.Repeat(line, fileSize/len(line)+1)[:fileSize]
	rnd := make([]byte, fileSize)
	for i := range mbs * 4 {
		dir := filepath.Join(h.src, fmt.Sprintf("d%03d", i/100))
		os.MkdirAll(dir, 0o755)
		b := text
		if i%5 == 4 {
			rand.Read(rnd)
			b = rnd
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pol := h.writePolicy("eu-only", localTarget("paris", "FR", filepath.Join(h.dir, "store")))
	id := h.backup(pol)
	h.ok("backup", "restore", id, "--to", filepath.Join(h.dir, "restored"), "--policy", pol, "--env", h.agentEnv)
}

func mustTarget(t *testing.T, pol, name string) *policy.Target {
	t.Helper()
	p, err := policy.Load(pol)
	if err != nil {
		t.Fatal(err)
	}
	pt, ok := p.Target(name)
	if !ok {
		t.Fatalf("no target %q", name)
	}
	return pt
}

func TestBackupPrune(t *testing.T) {
	h := newBackupHarness(t)
	h.retention = "1s"
	store := filepath.Join(h.dir, "store")
	pol := h.writePolicy("eu-only", localTarget("paris", "FR", store))
	id1 := h.backup(pol)
	time.Sleep(1100 * time.Millisecond)
	id2 := h.backup(pol)

	out := h.ok("backup", "prune", "--policy", pol, "--dry-run")
	wantAll(t, "prune --dry-run", out, "would delete "+id1)
	if _, err := os.Stat(filepath.Join(store, "hr", id1+".age")); err != nil {
		t.Fatalf("dry run deleted: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	out = h.ok("backup", "prune", "--policy", pol, "--env", h.agentEnv)
	wantAll(t, "prune", out, "deleted  "+id1, "keep     "+id2+" (hr on \"paris\"): past retention but the newest", "1 deleted, 1 kept")
	for _, suf := range []string{".age", ".index.age", ".manifest.json"} {
		if _, err := os.Stat(filepath.Join(store, "hr", id1+suf)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s%s after prune: %v", id1, suf, err)
		}
	}
	pr := h.entriesOf(client.AttestPrune, id1)
	if len(pr) != 1 || pr[0].Details["target"] != "paris" || !strings.Contains(pr[0].Details["reason"], "retention") {
		t.Errorf("prune entries %+v", pr)
	}
	out = h.ok("backup", "list", "--policy", pol)
	if strings.Contains(out, id1) || !strings.Contains(out, id2) {
		t.Errorf("list after prune:\n%s", out)
	}
}
