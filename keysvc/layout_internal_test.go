package keysvc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/state"
)

// TestRestoreRefusesNewerLayoutSnapshot: a snapshot is the sender's whole
// state.db; one in a later release's layout is refused before it replaces
// anything, and the node's database stays as it was.
func TestRestoreRefusesNewerLayoutSnapshot(t *testing.T) {
	sender := newTestState(t)
	if err := sender.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("layout_version"), binary.BigEndian.AppendUint64(nil, state.LayoutVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := sender.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	recv := newTestState(t)
	before, err := os.ReadFile(recv.path)
	if err != nil {
		t.Fatal(err)
	}
	err = recv.Restore(&buf)
	if !errors.Is(err, state.ErrNewerLayout) {
		t.Fatalf("restore of a newer-layout snapshot: %v", err)
	}
	after, err := os.ReadFile(recv.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the refused snapshot changed state.db")
	}
	if err := recv.view(func(tx *bbolt.Tx) error {
		if v := state.Layout(tx); v != state.LayoutVersion {
			t.Errorf("layout after the refusal: %d", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
