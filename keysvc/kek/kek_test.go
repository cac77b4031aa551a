package kek_test

import (
	"strings"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/custos-eu/custos/keysvc/ledger"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

var ctx = wrapkey.Context{"dataset": "payroll", "purpose": "backup"}

// cluster deals id v1 t-of-n onto n fake HSMs and returns the record, tokens and sealed shares.
func cluster(t *testing.T, t_, n int) (*kek.Version, []hsm.Token, [][]byte) {
	t.Helper()
	v, shares, err := kek.Deal(rand.Reader, "k1", 1, t_, n)
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]hsm.Token, n)
	sealed := make([][]byte, n)
	for i := range shares {
		toks[i] = hsmtest.NewFake()
		sealed[i], err = kekhsm.SealShare(toks[i], v, &shares[i])
		if err != nil {
			t.Fatal(err)
		}
		shares[i].Zeroize()
	}
	return v, toks, sealed
}

func open(t *testing.T, v *kek.Version, toks []hsm.Token, sealed [][]byte, nodes ...int) []threshold.Share {
	t.Helper()
	var out []threshold.Share
	for _, i := range nodes {
		sh, err := kekhsm.OpenShare(toks[i], v, uint16(i+1), sealed[i])
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		out = append(out, *sh)
	}
	return out
}

func TestAnyThresholdOfNodesUnwraps(t *testing.T) {
	v, toks, sealed := cluster(t, 2, 3)
	dek := []byte("0123456789abcdef0123456789abcdef")
	blob, err := v.Wrap(rand.Reader, ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][]int{{0, 1}, {0, 2}, {1, 2}, {0, 1, 2}} {
		k, err := kek.Reconstitute(v, open(t, v, toks, sealed, pair...))
		if err != nil {
			t.Fatalf("nodes %v: %v", pair, err)
		}
		got, err := k.Unwrap(blob, ctx)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("nodes %v: unwrap = %x, %v", pair, got, err)
		}
		k.Destroy()
		if _, err := k.Unwrap(blob, ctx); !errors.Is(err, wrapkey.ErrKeyDestroyed) {
			t.Fatalf("destroyed key still unwraps: %v", err)
		}
	}
}

func TestOneShareIsNotEnough(t *testing.T) {
	v, toks, sealed := cluster(t, 2, 3)
	_, err := kek.Reconstitute(v, open(t, v, toks, sealed, 1))
	if !errors.Is(err, kek.ErrNotEnoughShares) {
		t.Fatalf("got %v, want ErrNotEnoughShares", err)
	}
}

func TestDestroyedSealingKeyMakesShareUseless(t *testing.T) {
	v, toks, sealed := cluster(t, 2, 3)
	if err := kekhsm.Destroy(toks[2], v.ID, v.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := kekhsm.OpenShare(toks[2], v, 3, sealed[2]); !errors.Is(err, kek.ErrShareUnavailable) {
		t.Fatalf("got %v, want ErrShareUnavailable", err)
	}
	// Another node's HSM cannot open it either: each node's key is its own.
	if _, err := kekhsm.OpenShare(toks[0], v, 3, sealed[2]); !errors.Is(err, kek.ErrShareCorrupt) {
		t.Fatalf("node 1 opening node 3's share: got %v, want ErrShareCorrupt", err)
	}
	if err := kekhsm.Destroy(toks[2], v.ID, v.Version); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("second destroy: got %v, want ErrKeyNotFound", err)
	}
}

func TestTamperedOrMisplacedShareIsRefused(t *testing.T) {
	v, toks, sealed := cluster(t, 2, 3)
	bad := bytes.Clone(sealed[0])
	bad[len(bad)-1] ^= 1
	if _, err := kekhsm.OpenShare(toks[0], v, 1, bad); !errors.Is(err, kek.ErrShareCorrupt) {
		t.Fatalf("tampered: got %v", err)
	}
	// The sealed share is bound to its index.
	if _, err := kekhsm.OpenShare(toks[0], v, 2, sealed[0]); !errors.Is(err, kek.ErrShareCorrupt) {
		t.Fatalf("wrong index: got %v", err)
	}
	// And to its KEK version: a record with another version cannot open it.
	other := *v
	other.Version = 2
	if _, err := kekhsm.OpenShare(toks[0], &other, 1, sealed[0]); !errors.Is(err, kek.ErrShareUnavailable) {
		t.Fatalf("other version: got %v", err)
	}
}

func TestSharesOfAnotherVersionAreNamed(t *testing.T) {
	v1, toks1, sealed1 := cluster(t, 2, 3)
	v2, toks2, sealed2 := cluster(t, 2, 3)
	mixed := append(open(t, v1, toks1, sealed1, 0), open(t, v2, toks2, sealed2, 1)...)
	_, err := kek.Reconstitute(v1, mixed)
	var bad *threshold.BadShareError
	if !errors.As(err, &bad) || len(bad.Indices) != 1 || bad.Indices[0] != 2 {
		t.Fatalf("got %v, want BadShareError naming share 2", err)
	}
}

func TestSealRefusesShareNotMatchingCommitments(t *testing.T) {
	v1, shares1, err := kek.Deal(rand.Reader, "k1", 1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	v2, _, err := kek.Deal(rand.Reader, "k1", 1, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	tok := hsmtest.NewFake()
	var bad *threshold.BadShareError
	if _, err := kekhsm.SealShare(tok, v2, &shares1[0]); !errors.As(err, &bad) {
		t.Fatalf("got %v, want BadShareError", err)
	}
	if _, err := kekhsm.SealShare(tok, v1, &shares1[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := kekhsm.SealShare(tok, v1, &shares1[0]); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("second seal: got %v, want ErrKeyExists", err)
	}
}

func TestReconstituteChecksPublicKey(t *testing.T) {
	v, toks, sealed := cluster(t, 2, 3)
	shares := open(t, v, toks, sealed, 0, 1)
	forged := *v
	forged.PublicKey = bytes.Clone(v.PublicKey)
	forged.PublicKey[0] ^= 1
	if _, err := kek.Reconstitute(&forged, shares); !errors.Is(err, kek.ErrKeyMismatch) {
		t.Fatalf("got %v, want ErrKeyMismatch", err)
	}
}

func TestDealRejectsBadParameters(t *testing.T) {
	for _, c := range []struct {
		id   string
		v    uint32
		t, n int
	}{{"k1", 0, 2, 3}, {"", 1, 2, 3}, {"Bad Id", 1, 2, 3}, {"k1", 1, 4, 3}, {"k1", 1, 0, 3}} {
		if _, _, err := kek.Deal(rand.Reader, c.id, c.v, c.t, c.n); err == nil {
			t.Errorf("Deal(%q, v%d, %d-of-%d) succeeded", c.id, c.v, c.t, c.n)
		}
	}
}

func BenchmarkUnwrap2of3Fake(b *testing.B) {
	v, shares, _ := kek.Deal(rand.Reader, "k1", 1, 2, 3)
	toks := []hsm.Token{hsmtest.NewFake(), hsmtest.NewFake()}
	sealed := make([][]byte, 2)
	for i := range toks {
		sealed[i], _ = kekhsm.SealShare(toks[i], v, &shares[i])
	}
	blob, _ := v.Wrap(rand.Reader, ctx, make([]byte, 32))
	b.ResetTimer()
	for b.Loop() {
		var got []threshold.Share
		for i := range toks {
			sh, err := kekhsm.OpenShare(toks[i], v, uint16(i+1), sealed[i])
			if err != nil {
				b.Fatal(err)
			}
			got = append(got, *sh)
		}
		k, err := kek.Reconstitute(v, got)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Unwrap(blob, ctx); err != nil {
			b.Fatal(err)
		}
		k.Destroy()
	}
}

// The statements nodes sign (package ledger) name this package's labels.
func TestStatementsNameTheLabel(t *testing.T) {
	want := "label " + kek.Label("payroll", 3) + "\n"
	for _, s := range []string{
		ledger.ShareDestroyedStatement("c", "n1", "payroll", 3, "p"),
		ledger.ShareSealedStatement("c", "n1", "payroll", 3, 1, nil, nil, nil, "p"),
	} {
		if !strings.Contains(s, want) {
			t.Errorf("statement %q lacks %q", s, want)
		}
	}
}
