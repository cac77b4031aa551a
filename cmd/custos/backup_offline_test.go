package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
)

// offlinePolicy writes h's policy with dataset "hr" wrapped offline.
func (h *backupHarness) offlinePolicy(targets string) string {
	h.t.Helper()
	pol := h.writePolicy("eu-only", targets)
	b, err := os.ReadFile(pol)
	if err != nil {
		h.t.Fatal(err)
	}
	s := strings.Replace(string(b), `kek            = "backups"`, "kek            = \"backups\"\nwrap           = \"offline\"", 1)
	if s == string(b) {
		h.t.Fatal("no kek line in the policy")
	}
	if err := os.WriteFile(pol, []byte(s), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return pol
}

// pinTrust writes a trust file of h's cluster with custos audit checkpoint.
func (h *backupHarness) pinTrust() string {
	h.t.Helper()
	aud := h.writeEnv("audit-1", identity.RoleAuditor)
	path := filepath.Join(h.dir, "trust.json")
	h.ok("audit", "checkpoint", "--out", path, "--env", aud)
	return path
}

func (h *backupHarness) manifest(store, id string) *archive.Manifest {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(store, "hr", id+".manifest.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := archive.ParseManifest(b)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *backupHarness) countType(typ string) int {
	n := 0
	for _, e := range h.logEntries() {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// storedFiles lists the files under dir (none if it does not exist).
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func TestBackupOfflineWrap(t *testing.T) {
	h := newBackupHarness(t)
	t.Setenv(envTrust, "")
	trust := h.pinTrust()
	store := filepath.Join(h.dir, "store")
	pol := h.offlinePolicy(localTarget("paris", "FR", store))

	wraps := h.countType("kek.wrap")
	id := h.backup(pol, "--trust", trust)
	if n := h.countType("kek.wrap"); n != wraps {
		t.Errorf("an offline backup logged %d wrap(s)", n-wraps)
	}
	k, err := h.env.Client(t, identity.RoleAuditor, "audit-1").KEK(context.Background(), "backups")
	if err != nil {
		t.Fatal(err)
	}
	m := h.manifest(store, id)
	if m.KEK.ID != "backups" || m.KEK.Version != 1 || m.KEK.WrapLogIndex != 0 || m.KEK.KeyLogIndex == 0 || m.KEK.KeyLogIndex != k.Versions[0].Created {
		t.Errorf("manifest kek %+v, want v1 proved by entry %d", m.KEK, k.Versions[0].Created)
	}
	mb, _ := os.ReadFile(filepath.Join(store, "hr", id+".manifest.json"))
	if strings.Contains(string(mb), "wrap_log_index") || !strings.Contains(string(mb), `"key_log_index"`) {
		t.Errorf("manifest:\n%s", mb)
	}
	tr := h.entriesOf(client.AttestTransfer, id)
	if len(tr) != 1 || tr[0].Details["wrap"] != "offline" {
		t.Fatalf("transfer entries %+v", tr)
	}

	// The restore unwraps through the cluster, logged, and round-trips.
	unwraps := h.countType("kek.unwrap")
	dst := filepath.Join(h.dir, "restored")
	out := h.ok("backup", "restore", id, "--to", dst, "--policy", pol, "--env", h.agentEnv)
	wantAll(t, "restore", out, "unwrap     receipt: log entry")
	sameTree(t, h.src, filepath.Join(dst, h.src))
	if n := h.countType("kek.unwrap"); n != unwraps+2 {
		t.Errorf("restore logged %d unwrap(s), want 2 (archive and index)", n-unwraps)
	}
	h.ok("backup", "verify", id, "--full", "--policy", pol, "--env", h.agentEnv)

	// $CUSTOS_TRUST stands in for --trust.
	t.Setenv(envTrust, trust)
	id2 := h.backup(pol)
	if m := h.manifest(store, id2); m.KEK.KeyLogIndex != k.Versions[0].Created || m.KEK.WrapLogIndex != 0 {
		t.Errorf("second offline manifest kek %+v", m.KEK)
	}

	// An online dataset ignores the trust file and says so in the log.
	store2 := filepath.Join(h.dir, "store2")
	id3 := h.backup(h.writePolicy("eu-only", localTarget("paris", "FR", store2)))
	if m := h.manifest(store2, id3); m.KEK.WrapLogIndex == 0 || m.KEK.KeyLogIndex != 0 {
		t.Errorf("online manifest kek %+v", m.KEK)
	}
	if tr := h.entriesOf(client.AttestTransfer, id3); len(tr) != 1 || tr[0].Details["wrap"] != "online" {
		t.Errorf("online transfer entries %+v", tr)
	}
}

// tamperedSource serves another public key than the cluster's.
type tamperedSource struct{ kekKeySource }

func (s tamperedSource) PublicKey(ctx context.Context, kekID string, version uint32) (client.PublicKeyResponse, error) {
	pk, err := s.kekKeySource.PublicKey(ctx, kekID, version)
	if err == nil {
		pk.PublicKey[len(pk.PublicKey)-1] ^= 1
	}
	return pk, err
}

// wrongEntrySource serves the public key with another entry than the one that
// dealt it (the genesis entry, at its own index).
type wrongEntrySource struct {
	kekKeySource
	genesis []byte
}

func (s wrongEntrySource) PublicKey(ctx context.Context, kekID string, version uint32) (client.PublicKeyResponse, error) {
	pk, err := s.kekKeySource.PublicKey(ctx, kekID, version)
	pk.Entry, pk.LogIndex = s.genesis, 0
	return pk, err
}

func TestBackupOfflineRefusals(t *testing.T) {
	h := newBackupHarness(t)
	t.Setenv(envTrust, "")
	store := filepath.Join(h.dir, "store")
	pol := h.offlinePolicy(localTarget("paris", "FR", store))
	refused := func(what string, want []string, args ...string) {
		t.Helper()
		code, _, errOut := h.cli(append([]string{"backup", "run", "--policy", pol, "--dataset", "hr", "--env", h.agentEnv}, args...)...)
		if code == 0 {
			t.Fatalf("%s: backup succeeded", what)
		}
		wantAll(t, what, errOut, append(want, "nothing was sent")...)
		if files := storedFiles(t, store); len(files) != 0 {
			t.Errorf("%s: the target holds %v", what, files)
		}
	}

	refused("no trust file", []string{"wraps offline", "--trust FILE", "$" + envTrust, "custos audit checkpoint"})
	refused("unreadable trust file", []string{"trust file", "no-such-trust.json"}, "--trust", filepath.Join(h.dir, "no-such-trust.json"))

	// A trust file of another cluster (same name, other nodes and log).
	other := newBackupHarness(t)
	t.Setenv(envTrust, "")
	refused("trust file of another cluster", []string{"not signed by a trusted node", "custos audit checkpoint"}, "--trust", other.pinTrust())

	trust := h.pinTrust()
	defer func(f func(*client.Client) kekKeySource) { offlineKeySource = f }(offlineKeySource)

	// A cluster (or a machine in the middle) serving another key.
	offlineKeySource = func(c *client.Client) kekKeySource { return tamperedSource{c} }
	refused("tampered public key", []string{"not the one the log names", "kek backups"}, "--trust", trust)

	// A key served with an entry that did not deal it.
	aud := h.env.Client(t, identity.RoleAuditor, "audit-1")
	g, err := aud.Entries(context.Background(), 0, 1)
	if err != nil || len(g) != 1 {
		t.Fatal(g, err)
	}
	offlineKeySource = func(c *client.Client) kekKeySource { return wrongEntrySource{c, g[0]} }
	refused("entry of another operation", []string{"did not deal a kek version", "cluster.genesis"}, "--trust", trust)

	// Nothing was wrapped or attested for the refused runs.
	for _, e := range h.logEntries() {
		if e.Type == client.AttestTransfer || e.Type == "kek.wrap" {
			t.Errorf("a refused offline backup logged %+v", e)
		}
	}

	// With the real key, the same trust file works.
	offlineKeySource = func(c *client.Client) kekKeySource { return c }
	h.backup(pol, "--trust", trust)
}
