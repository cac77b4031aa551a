package main

// A storage-side attacker, with write access to the target and nothing
// else, against restore, verify and drill: each forgery is refused before
// the archive is read, and nothing is written to the restore directory.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
)

// forge builds an archive of dir with only the KEK's public key (any role
// may read it), under the id and dataset of the archive in store, and
// returns its manifest and the bytes of its archive and index objects.
func (h *backupHarness) forge(store, id, dir string) (*archive.Manifest, []byte, []byte) {
	h.t.Helper()
	aud := h.env.Client(h.t, identity.RoleAuditor, "anyone")
	pk, err := aud.PublicKey(context.Background(), "backups", 1)
	if err != nil {
		h.t.Fatal(err)
	}
	m, arc, idx, err := forgeArchive(context.Background(), pk.PublicKey, h.manifest(store, id), []string{dir})
	if err != nil {
		h.t.Fatal(err)
	}
	return m, arc, idx
}

// put replaces an object of archive id in the local store.
func put(t *testing.T, store, id, suffix string, b []byte) {
	t.Helper()
	p := filepath.Join(store, "hr", id+suffix)
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func putManifest(t *testing.T, store string, m *archive.Manifest) {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	put(t, store, m.ArchiveID, suffixManifest, b)
}

// refusedEverywhere runs restore, verify and drill of id and wants each
// refused with code before reading, the restore directory left empty and
// the drill recorded as failed.
func (h *backupHarness) refusedEverywhere(pol, id, code string, extra ...string) {
	h.t.Helper()
	dst := filepath.Join(h.dir, "restored-"+code)
	for _, args := range [][]string{
		{"backup", "restore", id, "--to", dst},
		{"backup", "verify", id},
		{"backup", "verify", id, "--full"},
		{"backup", "drill", id},
	} {
		args = append(append(args, "--policy", pol, "--env", h.agentEnv), extra...)
		n, out, errOut := h.cli(args...)
		if n != 1 || !strings.Contains(errOut, code) || !strings.Contains(errOut, "refused before reading it") {
			h.t.Errorf("%s: exit %d, want 1 and %s:\n%s%s", strings.Join(args[:2], " "), n, code, out, errOut)
		}
		if strings.Contains(out, "ok ") || strings.Contains(out, "verified") {
			h.t.Errorf("%s printed success:\n%s", strings.Join(args[:2], " "), out)
		}
	}
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		h.t.Errorf("a refused restore wrote %v", ents)
	}
	drills := h.entriesOf(client.AttestDrill, id)
	if len(drills) == 0 || drills[len(drills)-1].Details["result"] != "failed: not proved against the log" {
		h.t.Errorf("the refused drill was recorded as %+v", drills)
	}
}

func TestRestoreRefusesForgeries(t *testing.T) {
	h := newBackupHarness(t)
	store := filepath.Join(h.dir, "store")
	pol := h.writePolicy("eu-only", localTarget("paris", "FR", store))
	id := h.backup(pol)
	other := h.backup(pol)
	real := h.manifest(store, id)
	evil := filepath.Join(h.dir, "evil")
	if err := os.MkdirAll(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(evil, "payroll.csv"), []byte("mallory,1000000\n"), 0o4755); err != nil {
		t.Fatal(err)
	}

	t.Run("planted archive with the real receipt", func(t *testing.T) {
		m, arc, idx := h.forge(store, id, evil)
		m.Receipt = real.Receipt
		put(t, store, id, suffixArchive, arc)
		put(t, store, id, suffixIndex, idx)
		putManifest(t, store, m)
		h.refusedEverywhere(pol, id, "transfer_mismatch")
	})
	t.Run("replaced index", func(t *testing.T) {
		forged, _, idx := h.forge(store, other, evil)
		m := h.manifest(store, other)
		m.Index = forged.Index
		put(t, store, other, suffixIndex, idx)
		putManifest(t, store, m)
		h.refusedEverywhere(pol, other, "transfer_mismatch")
	})
	t.Run("manifest naming another archive's entry", func(t *testing.T) {
		m := h.manifest(store, other)
		m.Receipt = real.Receipt
		putManifest(t, store, m)
		h.refusedEverywhere(pol, other, "transfer_mismatch")
	})
	t.Run("receipt of no entry", func(t *testing.T) {
		m := h.manifest(store, other)
		m.Receipt.LogIndex = 1 << 40
		putManifest(t, store, m)
		h.refusedEverywhere(pol, other, "transfer_missing")
	})
	t.Run("another agent's transfer", func(t *testing.T) {
		h2 := *h
		h2.agentEnv = h.writeEnv("agent-2", identity.RoleAgent)
		id2 := h2.backup(pol) // agent-2's archive, restored by agent-1
		h.refusedEverywhere(pol, id2, "transfer_missing")
	})
	t.Run("trust file of another cluster", func(t *testing.T) {
		otherTrust := newBackupHarness(t).pinTrust()
		fresh := h.backup(pol)
		h.refusedEverywhere(pol, fresh, "transfer_unproved", "--trust", otherTrust)
		// The same archive with this cluster's trust file restores.
		dst := filepath.Join(h.dir, "restored-trusted")
		out := h.ok("backup", "restore", fresh, "--to", dst, "--policy", pol, "--env", h.agentEnv, "--trust", h.pinTrust())
		wantAll(t, "restore with a trust file", out, "matches the manifest", "with the trust file")
	})
}
