package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/audit/audittest"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// auditHarness is a kekHarness with a KEK's life in its log: created,
// used by an agent (single and batch unwraps, a denial), put under legal
// hold and released, rotated, and its first version destroyed.
type auditHarness struct {
	*kekHarness
	agent   *client.Client
	blob    []byte
	auditor string // the auditor's env file
}

func newAuditHarness(t *testing.T) *auditHarness {
	h := &auditHarness{kekHarness: newKEKHarness(t), auditor: ""}
	h.auditor = h.envs["auditor"]
	h.cli(0, "operator", "init", "--env", h.opEnv, "--officers", strings.Join(h.pubs, ","), "--quorum", "2")
	h.execute("alice", "bob", "kek.create", "--kek", "backups", "--regions", "DE", "--context", "dataset")
	agent, err := (&apiFlags{env: h.writeEnv("agent-1", identity.RoleAgent, nil)}).client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	h.agent = agent
	w, err := agent.Wrap(context.Background(), "backups", bytes.Repeat([]byte{7}, 32), map[string]string{"dataset": "hr"})
	if err != nil {
		t.Fatal(err)
	}
	h.blob = w.Wrapped
	h.unwraps(2)
	// A denial (another context) and a batch: 3 items, one refused.
	if _, err := agent.Unwrap(context.Background(), "backups", h.blob, map[string]string{"dataset": "payroll"}); err == nil {
		t.Fatal("unwrap under another context succeeded")
	}
	items := []client.UnwrapItem{{Wrapped: h.blob, Context: map[string]string{"dataset": "hr"}}, {Wrapped: h.blob, Context: map[string]string{"dataset": "hr"}},
		{Wrapped: h.blob, Context: map[string]string{"dataset": "x"}}}
	if _, err := agent.UnwrapBatch(context.Background(), "backups", items); err != nil {
		t.Fatal(err)
	}
	h.execute("alice", "carol", "legal_hold.set", "--kek", "backups", "--reason", "case 2026-17")
	h.execute("bob", "carol", "legal_hold.release", "--kek", "backups", "--reason", "case closed")
	h.execute("alice", "bob", "kek.rotate", "--kek", "backups")
	h.execute("alice", "carol", "kek.destroy", "--kek", "backups", "--version", "1")
	h.waitCertificate("backups", "1", "--env", h.auditor)
	return h
}

// unwraps has the agent unwrap n times (with version 1, until destroyed).
func (h *auditHarness) unwraps(n int) {
	h.t.Helper()
	for range n {
		if _, err := h.agent.Unwrap(context.Background(), "backups", h.blob, map[string]string{"dataset": "hr"}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// wraps has the agent wrap n data keys (with the latest version).
func (h *auditHarness) wraps(n int) {
	h.t.Helper()
	for range n {
		if _, err := h.agent.Wrap(context.Background(), "backups", bytes.Repeat([]byte{1}, 32), map[string]string{"dataset": "hr"}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// file returns the path of name in the harness's directory.
func (h *auditHarness) file(name string) string { return filepath.Join(h.dir, name) }

// rewritePack applies edit to the lines of pack in, written to out.
func rewritePack(t *testing.T, in, out string, edit func(lines []string) []string) {
	t.Helper()
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if err := os.WriteFile(out, []byte(strings.Join(edit(lines), "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

var entryLineRE = regexp.MustCompile(`^\{"t":"entry","i":(\d+),"e":"([^"]*)"\}\n$`)

// entryLine finds the line of the first entry of type typ.
func entryLine(t *testing.T, lines []string, typ string) (int, uint64, []byte) {
	t.Helper()
	for n, l := range lines {
		m := entryLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(m[2])
		if err != nil {
			t.Fatal(err)
		}
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == typ {
			return n, e.Index, raw
		}
	}
	t.Fatalf("no %s entry in the pack", typ)
	return 0, 0, nil
}

func TestAuditCLI(t *testing.T) {
	h := newAuditHarness(t)
	trust, pack := h.file("trust.json"), h.file("pack.jsonl")

	// Pin, with the auditor's certificate from CUSTOS_AUDITOR_* although
	// the env file's default certificate is an agent's (which may not read
	// the log).
	aud, err := client.ReadEnvFile(h.auditor)
	if err != nil {
		t.Fatal(err)
	}
	mixed := h.writeEnv("agent-2", identity.RoleAgent, map[string]string{envAuditorCert: aud[envCert], envAuditorKey: aud[envKey]})
	out := h.cli(0, "audit", "checkpoint", "--out", trust, "--env", mixed)
	wantAll(t, "checkpoint", out, "Pinned the key-op log of cluster test", "signed by   custos/test/n1", "genesis     entry 0", "node keys   custos/test/n1, custos/test/n2, custos/test/n3")
	wantAll(t, "checkpoint over an existing file", h.cli(1, "audit", "checkpoint", "--out", trust, "--env", h.auditor), "exists", "--force")

	// The agent attests a restore drill of dataset hr, and a prune of
	// dataset payroll, which it never drilled.
	if _, err := h.agent.Attest(context.Background(), client.AttestRequest{Type: client.AttestDrill, KEKID: "backups", KEKVersion: 2,
		Details: map[string]string{"archive": "20261205T100003Z-0123456789abcdef", "dataset": "hr", "result": "ok", "restore_seconds": "12.500",
			"rto_seconds": "3600", "target": "local"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.agent.Attest(context.Background(), client.AttestRequest{Type: client.AttestPrune, KEKID: "backups", KEKVersion: 2,
		Details: map[string]string{"archive": "20250101T000000Z-0123456789abcdef", "dataset": "payroll", "target": "local", "reason": "retention"}}); err != nil {
		t.Fatal(err)
	}

	// Export and verify.
	out = h.cli(0, "audit", "export", "--out", pack, "--env", h.auditor)
	wantAll(t, "export", out, "Wrote "+pack+": entries 0 to ", "1 destruction certificates", "entries/s")
	out = h.cli(0, "audit", "verify", pack, "--trust", trust)
	wantAll(t, "verify", out, "OK: "+pack+" verifies against "+trust, "signed by n1", "executions checked", "entries/s")
	var j verifyJSON
	_, jout := h.run("audit", "verify", pack, "--trust", trust, "--json")
	if err := json.Unmarshal([]byte(strings.SplitN(jout, "\n", 2)[0]), &j); err != nil || !j.OK || j.From != 0 || j.Entries != j.To || j.Checkpoint == nil || j.CeremoniesVerified < 5 || j.Certificates != 1 {
		t.Fatalf("verify --json: %+v, %v\n%s", j, err, jout)
	}

	// Reports.
	htmlFile, md := h.file("report.html"), h.file("report.md")
	wantAll(t, "report", h.cli(0, "audit", "report", pack, "--trust", trust, "--out", htmlFile), "(html, verified)", "1 KEKs", "1 destroyed versions",
		"1 restore drills (0 missed, 1 datasets without one)")
	b, _ := os.ReadFile(htmlFile)
	report := string(b)
	wantAll(t, "HTML report", report, "<svg", "Unwraps per day, by KEK", "KEK <code>backups</code>", "Verified.", "alice, bob", "alice, carol",
		"kek.rotate", "kek.destroy", "legal_hold.set", "case 2026-17", "custos://test/agent/agent-1?region=DE", "unwrap_failed",
		"Cross-border transfers</h2>\n<p>None recorded.</p>", "attested: its HSM key is destroyed", "complete: every holder attested",
		"<h2>Restore drills</h2>", "Dataset payroll had no drill in the pack.", "<code>20261205T100003Z-0123456789abcdef</code>", "ok, within the RTO")
	wantAll(t, "HTML report, unescaped", html.UnescapeString(report), fmt.Sprintf("size %d, root <code>%s</code>, signed by <code>custos/test/n1</code>", j.To, j.Checkpoint.Root))
	if strings.Contains(report, "<script") || strings.Contains(report, "http://") && !strings.Contains(report, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("the HTML report has a script or an external reference")
	}
	// 2 single unwraps and 2 of the batch's 3 items.
	if !regexp.MustCompile(`<td><code>backups</code></td><td><code>custos://test/agent/agent-1\?region=DE</code></td><td>DE</td><td class="n">4</td>`).MatchString(report) {
		t.Errorf("the HTML report does not count 4 unwraps for agent-1 in DE")
	}
	h.cli(0, "audit", "report", pack, "--trust", trust, "--out", md)
	b, _ = os.ReadFile(md)
	wantAll(t, "Markdown report", string(b), "# Key custody report: cluster test", "> **Verified.**", "data:image/svg+xml;base64,", "### KEK backups",
		"alice, carol", "| backups | custos://test/agent/agent-1?region=DE | DE | 4 |", "## Cross-border transfers\n\nNone recorded.",
		"| 20261205T100003Z-0123456789abcdef | 12.5 s | 1h | ok, within the RTO | 1 | 0 |", "| payroll | no drill in this pack |")
	wantAll(t, "report to stdout", h.cli(0, "audit", "report", pack, "--no-verify", "--format", "markdown", "--out", "-"), "NOT VERIFIED", "--no-verify")

	// Tampering: each is caught, naming the entry.
	lines, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.SplitAfter(strings.TrimSuffix(string(lines), "\n"), "\n")
	n, idx, raw := entryLine(t, all, "kek.unwrap")
	bad := h.file("bad.jsonl")
	for _, tc := range []struct {
		name string
		edit func([]string) []string
		want []string
	}{
		{"flipped byte", func(ls []string) []string {
			// Flip one byte of the entry's JSON: it no longer parses.
			r := bytes.Clone(raw)
			r[1] ^= 0x20
			ls[n] = fmt.Sprintf(`{"t":"entry","i":%d,"e":"%s"}`+"\n", idx, base64.StdEncoding.EncodeToString(r))
			return ls
		}, []string{fmt.Sprintf("FAIL: entry %d", idx)}},
		{"changed field", func(ls []string) []string {
			r := bytes.Replace(raw, []byte(`"region":"DE"`), []byte(`"region":"FR"`), 1)
			ls[n] = fmt.Sprintf(`{"t":"entry","i":%d,"e":"%s"}`+"\n", idx, base64.StdEncoding.EncodeToString(r))
			return ls
		}, []string{"FAIL:"}},
		{"deleted line", func(ls []string) []string { return append(ls[:n:n], ls[n+1:]...) },
			[]string{fmt.Sprintf("FAIL: entry %d", idx), "missing"}},
		{"truncated", func(ls []string) []string { return ls[:len(ls)-3] }, []string{"FAIL:", "truncated"}},
	} {
		rewritePack(t, pack, bad, tc.edit)
		out := h.cli(1, "audit", "verify", bad, "--trust", trust)
		wantAll(t, "verify "+tc.name, out, append(tc.want, "does not verify")...)
		_, jout := h.run("audit", "verify", bad, "--trust", trust, "--json")
		var j verifyJSON
		if err := json.Unmarshal([]byte(strings.SplitN(jout, "\n", 2)[0]), &j); err != nil || j.OK || j.Failure == nil {
			t.Errorf("verify --json %s: %+v, %v", tc.name, j, err)
		}
	}
	// A report on a pack that fails is refused, unless asked, under a banner.
	rewritePack(t, pack, bad, func(ls []string) []string { return append(ls[:n:n], ls[n+1:]...) })
	wantAll(t, "report on a bad pack", h.cli(1, "audit", "report", bad, "--trust", trust, "--out", htmlFile), "does not verify", "refusing", "--unverified")
	h.cli(0, "audit", "report", bad, "--trust", trust, "--unverified", "--out", htmlFile)
	b, _ = os.ReadFile(htmlFile)
	wantAll(t, "unverified report", string(b), `<div class="banner bad">NOT VERIFIED. Verification against`, fmt.Sprintf("entry %d", idx))

	// Advance the pin with the verified state; more operations; a pack
	// since the pin verifies in full, and a watcher follows.
	plain := h.file("plain.json")
	copyFile(t, trust, plain)
	wantAll(t, "verify --advance", h.cli(0, "audit", "verify", pack, "--trust", trust, "--advance"), "Moved the pin in "+trust)
	h.wraps(3)
	h.execute("bob", "carol", "kek.disable", "--kek", "backups", "--version", "2")
	pack2 := h.file("pack2.jsonl")
	out = h.cli(0, "audit", "export", "--since", trust, "--out", pack2, "--env", h.auditor)
	wantAll(t, "export --since", out, "and the consistency proof from the pinned checkpoint")
	wantAll(t, "verify since", h.cli(0, "audit", "verify", pack2, "--trust", trust), "OK:", "the pack's log extends it")
	if strings.Contains(h.cli(0, "audit", "verify", pack2, "--trust", trust), "PARTIAL") {
		t.Error("a pack from the verified state verified partially")
	}
	// With the plain pin (no verified state) it is partial: refused unless asked.
	pack3 := h.file("pack3.jsonl")
	h.cli(0, "audit", "export", "--since", plain, "--out", pack3, "--env", h.auditor)
	wantAll(t, "verify partial", h.cli(1, "audit", "verify", pack3, "--trust", plain), "FAIL: trust", "no verified state")
	wantAll(t, "verify --partial", h.cli(0, "audit", "verify", pack3, "--trust", plain, "--partial"), "OK:", "PARTIAL:")
	h.cli(0, "audit", "report", pack2, "--trust", trust, "--out", md)
	b, _ = os.ReadFile(md)
	wantAll(t, "report since", string(b), "kek.disable", "| 2 | disabled |")

	// --to other than the latest checkpoint is refused.
	wantAll(t, "export --to", h.cli(1, "audit", "export", "--out", h.file("x"), "--to", "3", "--env", h.auditor), "latest size only")
	if _, err := os.Stat(h.file("x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused export left %s", h.file("x"))
	}

	// Watch: the plain pin moves forward; a trust file with a verified
	// state is refused; a pin of another cluster's keys is an alert.
	pinned := readPin(t, plain)
	out = h.cli(0, "audit", "watch", "--once", "--trust", plain, "--env", h.auditor)
	wantAll(t, "watch --once", out, "checkpoint accepted")
	if moved := readPin(t, plain); moved.Size <= pinned.Size {
		t.Errorf("watch did not move the pin: %d, was %d", moved.Size, pinned.Size)
	}
	wantAll(t, "watch again", h.cli(0, "audit", "watch", "--once", "--trust", plain, "--env", h.auditor), "checkpoint unchanged")
	// A pack from an arbitrary entry verifies (partially) against a pin in its range.
	pack4 := h.file("pack4.jsonl")
	wantAll(t, "export --from", h.cli(0, "audit", "export", "--from", "10", "--out", pack4, "--env", h.auditor), "entries 10 to ")
	wantAll(t, "verify --from pack", h.cli(0, "audit", "verify", pack4, "--trust", plain, "--partial"), "OK:", "entries     10 to", "PARTIAL")
	// Watching a trust file with a verified state moves its pin and keeps
	// the state: the next --since pack starts there and verifies in full.
	oldNote := readTrustFile(t, trust).Checkpoint // replayed below as a rollback
	wantAll(t, "watch a verified state", h.cli(0, "audit", "watch", "--once", "--trust", trust, "--env", h.auditor), "checkpoint accepted")
	if readTrustFile(t, trust).State == nil {
		t.Error("watch dropped the verified state")
	}
	pack5 := h.file("pack5.jsonl")
	h.cli(0, "audit", "export", "--since", trust, "--out", pack5, "--env", h.auditor)
	if out := h.cli(0, "audit", "verify", pack5, "--trust", trust); strings.Contains(out, "PARTIAL") {
		t.Errorf("a --since pack from the kept state verified only partially:\n%s", out)
	}
	other := h.file("other.json")
	f := audittest.NewLog(t, "test", 5)
	if err := os.WriteFile(other, f.Trust(t, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	wantAll(t, "watch another cluster's pin", h.cli(1, "audit", "watch", "--once", "--trust", other, "--env", h.auditor),
		"ALERT: the latest checkpoint does not verify with the trust file's node keys")

	// Rollback: the cluster (here: a source replaying an old checkpoint)
	// shows less than the pin.
	cl, err := auditorClient(&apiFlags{env: h.auditor})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var logged bytes.Buffer
	w, err := newWatcher(replay{cl, []byte(oldNote)}, plain, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var alerts bytes.Buffer
	err = watchLoop(context.Background(), w, &alerts, time.Second, true)
	if !strings.Contains(alerts.String(), "ALERT: rollback") || err == nil {
		t.Errorf("watch of a rolled-back log: %v\n%s", err, alerts.String())
	}
}

// replay is a checkpoint source that serves a recorded checkpoint.
type replay struct {
	*client.Client
	note []byte
}

func (r replay) Checkpoint(context.Context) ([]byte, error) { return r.note, nil }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTrustFile(t *testing.T, path string) *audit.Trust {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := audit.ParseTrust(b)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func readPin(t *testing.T, path string) ledger.Checkpoint { return readTrustFile(t, path).Pinned() }

// fakeSource serves a fakeLog's checkpoints: note, and proofs (bad ones
// if forged).
type fakeSource struct {
	*audittest.Log
	note     []byte
	forged   bool
	doctored map[uint64][]byte // entries served instead of the log's
}

func (s *fakeSource) Checkpoint(context.Context) ([]byte, error) { return s.note, nil }

func (s *fakeSource) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error) {
	p, err := s.Log.ConsistencyProof(ctx, oldSize, newSize)
	if s.forged && len(p.Hashes) > 0 {
		p.Hashes[0][0] ^= 1
	}
	return p, err
}

func TestAuditWatch(t *testing.T) {
	f := audittest.NewLog(t, "test", 6)
	path := filepath.Join(t.TempDir(), "trust.json")
	var other tlog.Hash
	other[0] = 1
	for _, tc := range []struct {
		name    string
		pin     int // pinned size
		note    func() []byte
		forged  bool
		alert   string // "" if the poll passes
		newSize uint64 // the pin after the poll
	}{
		{"grew", 3, func() []byte { return f.Checkpoint(t, 6, nil) }, false, "", 6},
		{"unchanged", 6, func() []byte { return f.Checkpoint(t, 6, nil) }, false, "", 6},
		{"fork at the same size", 6, func() []byte { return f.Checkpoint(t, 6, &other) }, false, "ALERT: fork: two signed checkpoints of size 6", 6},
		{"rollback", 6, func() []byte { return f.Checkpoint(t, 4, nil) }, false, "ALERT: rollback", 6},
		{"bad proof", 3, func() []byte { return f.Checkpoint(t, 6, nil) }, true, "ALERT: fork: the checkpoint of size 6", 3},
		{"forked tree", 3, func() []byte { return f.Checkpoint(t, 6, &other) }, false, "does not extend the pinned one", 3},
		{"unsigned", 3, func() []byte { return []byte("custos/test\n6\nAAAA\n\n") }, false, "ALERT: the latest checkpoint does not verify", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, f.Trust(t, tc.pin), 0o644); err != nil {
				t.Fatal(err)
			}
			var logged, out bytes.Buffer
			w, err := newWatcher(&fakeSource{Log: f, note: tc.note(), forged: tc.forged}, path, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			err = watchLoop(context.Background(), w, &out, time.Second, true)
			if tc.alert == "" {
				if err != nil {
					t.Fatalf("poll: %v\n%s%s", err, out.String(), logged.String())
				}
			} else if err == nil || !strings.Contains(out.String(), tc.alert) {
				t.Fatalf("poll: %v, output %q; want %q", err, out.String(), tc.alert)
			}
			if got := readPin(t, path).Size; got != tc.newSize {
				t.Errorf("pin at %d after the poll, want %d", got, tc.newSize)
			}
		})
	}
}

// TestAuditLargeLog exports and verifies a log of $CUSTOS_AUDIT_ENTRIES
// entries (skipped when unset), logging the rates: make it 1000000 for the
// figures in docs/auditors.md. $CUSTOS_AUDIT_KEEP names a directory to
// leave the pack and trust file in.
func TestAuditLargeLog(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CUSTOS_AUDIT_ENTRIES"))
	if n <= 0 {
		t.Skip("set CUSTOS_AUDIT_ENTRIES to the number of entries to append, export and verify")
	}
	clearEnv(t)
	pki := httpapitest.NewPKI(t, "test")
	// Patient raft timeouts: three nodes share this process's CPUs with
	// the appends, the API and the exporter.
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{CAs: pki.Pool(), Configure: func(cfg *keysvc.Config) {
		cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, time.Second
	}})
	leader := c.Leader()
	srv := pki.Serve(t, leader.Info().ID, keysvctest.Region(leader.Info().ID), httpapi.New(leader, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	files := pki.Issue(t, identity.RoleAuditor, "audit-1", "DE")
	dir := t.TempDir()
	env := filepath.Join(dir, "auditor.env")
	if err := os.WriteFile(env, []byte(fmt.Sprintf("%s=%q\n%s=%q\n%s=%q\n%s=%q\n", envAddr, srv.URL, envCA, files.CA, envCert, files.Cert, envKey, files.Key)), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	batch := make([]ledger.Entry, 4096)
	for i := range batch {
		batch[i] = ledger.Entry{Type: "kek.unwrap", Actor: ledger.Actor{Identity: "custos://test/agent/agent-1?region=DE", Role: "agent", Region: "DE",
			CertFingerprint: "sha256:459de6e6f2ff2c20ef1892ba977dfaf6ab70c6322114a4a545f141ee0d124e80"}, Node: "n1", KEKID: "backups", KEKVersion: 1,
			RequestID: fmt.Sprintf("%032x", i), Outcome: ledger.OutcomeOK,
			Details: map[string]string{"context": "sha256:8c9a8617209741738bc80cfe6b8355d138c4db388cb2e8679268894f190d8c95", "wrapped": "sha256:f97302368b935dbd05234a8bb8bb3a063ece9e4b05cc33c1737e66db445d461d"}}
	}
	for done := 0; done < n; done += len(batch) {
		if _, err := leader.AppendBatch(context.Background(), batch[:min(len(batch), n-done)]); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("appended %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	if keep := os.Getenv("CUSTOS_AUDIT_KEEP"); keep != "" {
		dir = keep // the pack and trust file stay, to time custos audit verify alone
	}
	trust, pack := filepath.Join(dir, "trust.json"), filepath.Join(dir, "pack.jsonl")
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if code := run(context.Background(), &out, &out, args); code != 0 {
			t.Fatalf("custos %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
		}
		return out.String()
	}
	cli("audit", "checkpoint", "--out", trust, "--env", env)
	t.Logf("export: %s", cli("audit", "export", "--out", pack, "--env", env))
	if os.Getenv("CUSTOS_AUDIT_TWICE") != "" {
		t.Logf("export again: %s", cli("audit", "export", "--out", pack, "--env", env))
	}
	t.Logf("verify: %s", cli("audit", "verify", pack, "--trust", trust))
	if fi, err := os.Stat(pack); err == nil {
		t.Logf("pack: %d MiB", fi.Size()>>20)
	}
}
