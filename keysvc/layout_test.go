package keysvc_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/state"
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

// editLayout sets (nil: deletes) the layout version in the state.db of dir,
// as a release that wrote another version (or none) would have left it.
func editLayout(t *testing.T, dir string, v []byte) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if v == nil {
			return meta.Delete([]byte("layout_version"))
		}
		return meta.Put([]byte("layout_version"), v)
	}); err != nil {
		t.Fatal(err)
	}
}

func readLayout(t *testing.T, dir string) []byte {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "state.db"), 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	db.View(func(tx *bbolt.Tx) error {
		v = bytes.Clone(tx.Bucket([]byte("meta")).Get([]byte("layout_version")))
		return nil
	})
	return v
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// TestOpenStampsLayoutOfOldState: a node's state as a release before the
// layout version wrote it (no version) opens as version 1, is stamped
// with this release's version, and serves as before.
func TestOpenStampsLayoutOfOldState(t *testing.T) {
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{})
	cfg := c.Config("n1")
	c.Stop("n1")
	if got := readLayout(t, cfg.DataDir); !bytes.Equal(got, be64(state.LayoutVersion)) {
		t.Fatalf("a new node's state records layout %x, want %d", got, state.LayoutVersion)
	}
	editLayout(t, cfg.DataDir, nil)
	if readLayout(t, cfg.DataDir) != nil {
		t.Fatal("test setup: the version is still there")
	}
	n := c.Start("n1")
	if n.Info().ID != "n1" {
		t.Fatal("reopened node lost its identity")
	}
	c.Stop("n1")
	if got := readLayout(t, cfg.DataDir); !bytes.Equal(got, be64(state.LayoutVersion)) {
		t.Fatalf("an old state was stamped %x, want %d", got, state.LayoutVersion)
	}
}

// TestOpenRefusesNewerLayout: a data directory a later release wrote (the
// binary was rolled back past a layout change) is refused at Open, naming
// both versions and what to do, and is left as it was; the newer layout's
// own release (here: the version put back) opens it.
func TestOpenRefusesNewerLayout(t *testing.T) {
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{})
	cfg := c.Config("n1")
	c.Stop("n1")
	path := filepath.Join(cfg.DataDir, "state.db")
	newer := be64(state.LayoutVersion + 1)
	editLayout(t, cfg.DataDir, newer)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	n, err := keysvc.Open(cfg)
	if err == nil {
		n.Close()
		t.Fatal("opened a state in a newer data layout")
	}
	var ne *state.NewerLayoutError
	if !errors.Is(err, keysvc.ErrNewerLayout) || !errors.As(err, &ne) || ne.Found != state.LayoutVersion+1 || ne.Supported != state.LayoutVersion {
		t.Fatalf("open: %v, want a NewerLayoutError", err)
	}
	for _, want := range []string{path, "data layout version 2", "written by a later release", "up to 1", "roll the node back to the newer binary", "docs/upgrades.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the refused open changed state.db")
	}
	editLayout(t, cfg.DataDir, be64(state.LayoutVersion))
	c.Start("n1")
}
