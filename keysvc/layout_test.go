package keysvc_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/keysvctest"
)

// TestOpenRefusesOldLayout: a state whose member records carry no KEM key
// (as the previous release wrote them) is refused at Open, with what to do;
// the same state with the key opens.
func TestOpenRefusesOldLayout(t *testing.T) {
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{})
	cfg := c.Config("n1")
	c.Stop("n1")

	path := filepath.Join(cfg.DataDir, "state.db")
	var kem any
	editNode := func(fn func(rec map[string]any)) {
		t.Helper()
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("nodes"))
			var rec map[string]any
			if err := json.Unmarshal(b.Get([]byte("n1")), &rec); err != nil {
				return err
			}
			fn(rec)
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			return b.Put([]byte("n1"), v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	editNode(func(rec map[string]any) { kem = rec["kem"]; delete(rec, "kem") })
	if kem == nil || kem == "" {
		t.Fatal("test setup: the node record had no kem")
	}

	n, err := keysvc.Open(cfg)
	if err == nil {
		n.Close()
		t.Fatal("opened a state whose node record has no KEM key")
	}
	var oe *keysvc.OldLayoutError
	if !errors.Is(err, keysvc.ErrOldLayout) || !errors.As(err, &oe) || len(oe.Nodes) != 1 || oe.Nodes[0] != "n1" {
		t.Fatalf("open: %v, want ErrOldLayout naming n1", err)
	}
	for _, want := range []string{cfg.DataDir, "earlier release", "without KEM keys", "docs/operations.md", "Upgrading to this release"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q lacks %q", err, want)
		}
	}

	// The refusal left the state as it was: with its key back, it opens.
	editNode(func(rec map[string]any) { rec["kem"] = kem })
	n = c.Start("n1")
	if n.Info().KEM != kem {
		t.Fatal("node reopened without its KEM key")
	}
}
