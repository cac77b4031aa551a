package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
)

// withCluster is a fixture whose archives go through an in-memory cluster
// with KEK "backups", as agent-1.
func withCluster(t *testing.T) (*fixture, *agentcluster.Env, *client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an in-memory cluster")
	}
	env := agentcluster.New(t, "backups")
	c := env.Client(t, identity.RoleAgent, "agent-1")
	f := newFixture(t)
	return f, env, c
}

// A manifest is proved only by the transfer entry that describes it, which
// this agent logged.
func TestProveTransfer(t *testing.T) {
	f, env, c := withCluster(t)
	ctx := context.Background()
	m1 := f.runThrough(t, c)
	m2 := f.runThrough(t, c)

	a := f.find(t, m1.ArchiveID, false)
	p, err := a.Prove(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Served || p.Legacy || p.Entry.Index != m1.Receipt.LogIndex || p.Checkpoint.Size <= p.Entry.Index {
		t.Errorf("proof %+v", p)
	}
	if _, err := a.Verify(ctx, c, false, nil); err != nil {
		t.Errorf("verify of a proved archive: %v", err)
	}

	refused := func(what string, m *archive.Manifest, src TransferSource, want error) {
		t.Helper()
		if _, err := ProveTransfer(ctx, src, nil, m); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	other := *m2
	other.Receipt = m1.Receipt
	refused("manifest naming another archive's entry", &other, c, archive.ErrTransferMismatch)
	none := *m2
	none.Receipt = nil
	refused("no receipt", &none, c, archive.ErrTransferMissing)
	far := *m2
	far.Receipt = &archive.Receipt{LogIndex: 1 << 40}
	refused("receipt of no entry", &far, c, archive.ErrTransferMissing)
	refused("another agent's transfer", m1, env.Client(t, identity.RoleAgent, "agent-2"), archive.ErrTransferMissing)

	// Archive.Prove says the archive was refused, and remembers it.
	a2 := f.find(t, m2.ArchiveID, false)
	a2.Manifest = &other
	if _, err := a2.Prove(ctx, c, nil); !errors.Is(err, archive.ErrTransferMismatch) || !strings.Contains(err.Error(), "refused before reading it") {
		t.Errorf("Prove of a forged manifest: %v", err)
	}
	if _, err := a2.Verify(ctx, c, false, nil); !errors.Is(err, archive.ErrTransferMismatch) {
		t.Errorf("verify after a failed proof: %v", err)
	}
}

// tamperedKey serves another public key than the cluster's.
type tamperedKey struct{ KEKKeySource }

func (s tamperedKey) PublicKey(ctx context.Context, kekID string, version uint32) (client.PublicKeyResponse, error) {
	pk, err := s.KEKKeySource.PublicKey(ctx, kekID, version)
	if err == nil {
		pk.PublicKey[len(pk.PublicKey)-1] ^= 1
	}
	return pk, err
}

// An offline wrap uses the KEK's key only as the log names it.
func TestProveKEKKey(t *testing.T) {
	f, _, c := withCluster(t)
	ctx := context.Background()
	st, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.NodeKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := audit.ServedTrust(st.Cluster, keys)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ProveKEKKey(ctx, c, trust, "backups")
	if err != nil {
		t.Fatal(err)
	}
	if k.KEKID != "backups" || k.Version != 1 || k.LogIndex == 0 || len(k.Public) == 0 {
		t.Errorf("key %+v", k)
	}
	if _, err := ProveKEKKey(ctx, tamperedKey{c}, trust, "backups"); err == nil || !strings.Contains(err.Error(), "not the one the log names") {
		t.Errorf("tampered key: %v", err)
	}

	// Run with wrap = "offline": no trust, nothing sent; with it, the
	// manifest names the entry that proved the key.
	f.ag.p.Datasets[0].Wrap = "offline"
	pl, err := f.ag.Plan("hr", "paris")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := f.ag.open(ctx, pl.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTarget(tg)
	if _, err := f.ag.Run(ctx, RunRequest{Plan: pl, Target: tg, Cluster: c}); err == nil || !strings.Contains(err.Error(), "nothing was sent") {
		t.Errorf("offline run without trust: %v", err)
	}
	if _, err := f.ag.Run(ctx, RunRequest{Plan: pl, Target: tg, Cluster: c, Keys: tamperedKey{c}, Trust: trust}); err == nil || !strings.Contains(err.Error(), "nothing was sent") {
		t.Errorf("offline run with a tampered key: %v", err)
	}
	if all, _ := f.ag.List(ctx, []string{"paris"}, ""); len(all) != 0 {
		t.Errorf("refused runs left %+v", all)
	}
	res, err := f.ag.Run(ctx, RunRequest{Plan: pl, Target: tg, Cluster: c, Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Manifest; m.KEK.KeyLogIndex != k.LogIndex || m.KEK.WrapLogIndex != 0 {
		t.Errorf("offline manifest kek %+v", m.KEK)
	}
}
