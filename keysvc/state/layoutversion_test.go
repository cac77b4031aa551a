package state

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

func layoutDB(t *testing.T) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openLayout(t *testing.T, db *bbolt.DB) (from uint64, stamped bool, err error) {
	t.Helper()
	uerr := db.Update(func(tx *bbolt.Tx) error {
		from, stamped, err = OpenLayout(tx)
		if err != nil {
			return err
		}
		_, serr := Setup(tx)
		return serr
	})
	if uerr != nil && err == nil {
		t.Fatal(uerr)
	}
	return from, stamped, err
}

func recorded(t *testing.T, db *bbolt.DB) []byte {
	t.Helper()
	var v []byte
	db.View(func(tx *bbolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			v = append(v, m.Get(keyLayout)...)
		}
		return nil
	})
	return v
}

func setLayout(t *testing.T, db *bbolt.DB, v []byte) {
	t.Helper()
	if err := db.Update(func(tx *bbolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v == nil {
			return m.Delete(keyLayout)
		}
		return m.Put(keyLayout, v)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestLayoutStampedAtCreation: a new database records this release's
// layout; opening it again changes nothing.
func TestLayoutStampedAtCreation(t *testing.T) {
	db := layoutDB(t)
	if _, stamped, err := openLayout(t, db); err != nil || !stamped {
		t.Fatalf("first open: stamped %v, %v", stamped, err)
	}
	if got := recorded(t, db); string(got) != string(u64(LayoutVersion)) {
		t.Fatalf("recorded %x, want %d", got, LayoutVersion)
	}
	from, stamped, err := openLayout(t, db)
	if err != nil || stamped || from != LayoutVersion {
		t.Fatalf("second open: from %d, stamped %v, %v", from, stamped, err)
	}
}

// TestLayoutUnversionedIsVersion1: a database set up by a release before
// the version was recorded (buckets, no key) is version 1, and is stamped.
func TestLayoutUnversionedIsVersion1(t *testing.T) {
	db := layoutDB(t)
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := Setup(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if recorded(t, db) != nil {
		t.Fatal("Setup alone recorded a layout")
	}
	db.View(func(tx *bbolt.Tx) error {
		if v := Layout(tx); v != 1 {
			t.Errorf("unversioned layout reads as %d, want 1", v)
		}
		return nil
	})
	from, stamped, err := openLayout(t, db)
	if err != nil || !stamped || from != 1 {
		t.Fatalf("open: from %d, stamped %v, %v", from, stamped, err)
	}
	if got := recorded(t, db); string(got) != string(u64(LayoutVersion)) {
		t.Fatalf("recorded %x, want %d", got, LayoutVersion)
	}
}

// TestLayoutNewerRefused: a database of a later release is refused, with
// both versions and what to do, and left exactly as it was.
func TestLayoutNewerRefused(t *testing.T) {
	db := layoutDB(t)
	newer := u64(LayoutVersion + 1)
	setLayout(t, db, newer)
	_, _, err := openLayout(t, db)
	var ne *NewerLayoutError
	if !errors.Is(err, ErrNewerLayout) || !errors.As(err, &ne) || ne.Found != LayoutVersion+1 || ne.Supported != LayoutVersion {
		t.Fatalf("open: %v, want a NewerLayoutError %d > %d", err, LayoutVersion+1, LayoutVersion)
	}
	for _, want := range []string{"layout version 2", "up to 1", "roll the node back to the newer binary", "docs/upgrades.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if got := recorded(t, db); string(got) != string(newer) {
		t.Fatalf("refusal changed the version to %x", got)
	}
	db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketNodes) != nil {
			t.Error("the refused open created buckets")
		}
		return nil
	})
	// A read-only check (as of a snapshot) refuses it too.
	db.View(func(tx *bbolt.Tx) error {
		if err := CheckLayout(tx); !errors.Is(err, ErrNewerLayout) {
			t.Errorf("CheckLayout: %v", err)
		}
		return nil
	})
	// A malformed version is an error, not a version.
	setLayout(t, db, []byte{1})
	if _, _, err := openLayout(t, db); err == nil || errors.Is(err, ErrNewerLayout) {
		t.Fatalf("a 1-byte version: %v", err)
	}
}

// TestLayoutMigrationsRunInOrder: migrations run one step after another
// from the version found; a missing step or a failing one stamps nothing.
func TestLayoutMigrationsRunInOrder(t *testing.T) {
	db := layoutDB(t)
	var ran []uint64
	step := func(v uint64) migration {
		return migration{From: v, Run: func(tx *bbolt.Tx) error {
			ran = append(ran, v)
			return tx.Bucket(bucketMeta).Put([]byte("migrated_from"), u64(v))
		}}
	}
	steps := []migration{step(1), step(2), step(3)}
	setLayout(t, db, u64(2))
	if err := db.Update(func(tx *bbolt.Tx) error { return migrate(tx, 2, 4, steps) }); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 || ran[0] != 2 || ran[1] != 3 {
		t.Fatalf("ran %v, want [2 3]", ran)
	}
	if got := recorded(t, db); string(got) != string(u64(4)) {
		t.Fatalf("recorded %x, want 4", got)
	}

	// A failing step: the whole transaction, stamp included, is rolled back.
	setLayout(t, db, u64(1))
	boom := errors.New("boom")
	bad := []migration{step(1), {From: 2, Run: func(*bbolt.Tx) error { return boom }}}
	err := db.Update(func(tx *bbolt.Tx) error { return migrate(tx, 1, 3, bad) })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "from version 2 to 3") {
		t.Fatalf("failing step: %v", err)
	}
	if got := recorded(t, db); string(got) != string(u64(1)) {
		t.Fatalf("a failed migration left version %x", got)
	}
	// A gap in the steps is an error.
	if err := db.Update(func(tx *bbolt.Tx) error { return migrate(tx, 1, 3, []migration{step(1)}) }); err == nil ||
		!strings.Contains(err.Error(), "no migration from data layout version 2") {
		t.Fatalf("missing step: %v", err)
	}
	// The registered steps chain from 1 to LayoutVersion.
	for i, m := range migrations {
		if m.From != uint64(i+1) {
			t.Errorf("migrations[%d] is from %d", i, m.From)
		}
	}
	if len(migrations) != LayoutVersion-1 {
		t.Errorf("%d migrations registered for layout version %d", len(migrations), LayoutVersion)
	}
}

// TestLayoutNotInDigest: the version is the file's, not the replicated
// state's: a stamped and an unstamped copy of one state have one digest.
func TestLayoutNotInDigest(t *testing.T) {
	db := layoutDB(t)
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := Setup(tx); return err }); err != nil {
		t.Fatal(err)
	}
	digest := func() [32]byte {
		var d [32]byte
		if err := db.View(func(tx *bbolt.Tx) (err error) { d, err = Digest(tx); return err }); err != nil {
			t.Fatal(err)
		}
		return d
	}
	before := digest()
	openLayout(t, db)
	if recorded(t, db) == nil || digest() != before {
		t.Fatal("stamping the layout changed the digest")
	}
}
