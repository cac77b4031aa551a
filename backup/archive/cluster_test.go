package archive_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
)

// Back up and restore through a real (in-memory) cluster: the file keys
// are wrapped and unwrapped by the API, and the manifest carries the
// wrap's log index.
func TestArchiveThroughCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-memory cluster")
	}
	env := agentcluster.New(t, "backups")
	agent := env.Client(t, identity.RoleAgent, "agent-1")
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "f.txt"), []byte("payroll"), 0o600)

	rcp, err := custosage.NewOnlineRecipient(ctx, agent, "backups", archive.WrapContext("hr", "confidential", testID))
	if err != nil {
		t.Fatal(err)
	}
	var a, ix bytes.Buffer
	dec := &policy.Decision{Dataset: "hr", Target: "paris", Allowed: true, Why: "test"}
	m, err := archive.Create(ctx, []string{src}, &a, &ix, archive.CreateOptions{ArchiveID: testID, Dataset: "hr", Classification: "confidential", Recipient: rcp, Policy: dec})
	if err != nil {
		t.Fatal(err)
	}
	if m.KEK.ID != "backups" || m.KEK.Version != 1 || m.KEK.WrapLogIndex == 0 {
		t.Errorf("manifest kek %+v", m.KEK)
	}
	id := custosage.NewIdentity(ctx, agent)
	id.Expect = m.Expect()
	if m.Policy == nil || m.Policy.Target != "paris" {
		t.Errorf("manifest policy %+v", m.Policy)
	}
	mb, _ := m.Marshal()
	if _, err := archive.ParseManifest(mb); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	res, err := archive.Restore(ctx, m, bytes.NewReader(a.Bytes()), bytes.NewReader(ix.Bytes()), id, dst, archive.RestoreOptions{})
	if err != nil || res.Files != 1 {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, src, "sub", "f.txt")); string(b) != "payroll" {
		t.Errorf("restored %q", b)
	}
	if rc, _ := id.Receipt(); rc.LogIndex <= m.KEK.WrapLogIndex {
		t.Errorf("unwrap receipt %+v", rc)
	}
	// An agent from a region the KEK's policy leaves out cannot restore.
	nl := custosage.NewIdentity(ctx, env.ClientIn(t, identity.RoleAgent, "agent-nl", "NL"))
	dst2 := filepath.Join(t.TempDir(), "r")
	if _, err := archive.Restore(ctx, m, bytes.NewReader(a.Bytes()), bytes.NewReader(ix.Bytes()), nl, dst2, archive.RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "region_denied") {
		t.Errorf("restore from NL: %v", err)
	}
	if ents, _ := os.ReadDir(dst2); len(ents) != 0 {
		t.Errorf("refused restore left %v", ents)
	}
}
