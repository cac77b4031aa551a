package softhsmtests

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

var ctx = wrapkey.Context{"dataset": "finance", "classification": "restricted"}

// nodes opens one fresh SoftHSM token per would-be node.
func nodes(t testing.TB, n int) ([]hsm.Token, []pkcs11.Config) {
	t.Helper()
	labels := make([]string, n)
	for i := range labels {
		labels[i] = fmt.Sprintf("node-%d", i+1)
	}
	cfgs := hsmtest.SoftHSM(t, labels...)
	toks := make([]hsm.Token, n)
	for i, c := range cfgs {
		tok, err := pkcs11.Open(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tok.Close() })
		toks[i] = tok
	}
	return toks, cfgs
}

// deal creates KEK id v1 t-of-n and seals share i in toks[i].
func deal(t testing.TB, toks []hsm.Token, id string, th int) (*kek.Version, [][]byte) {
	t.Helper()
	v, shares, err := kek.Deal(rand.Reader, id, 1, th, len(toks))
	if err != nil {
		t.Fatal(err)
	}
	sealed := make([][]byte, len(toks))
	for i, tok := range toks {
		if sealed[i], err = kekhsm.SealShare(tok, v, &shares[i]); err != nil {
			t.Fatal(err)
		}
		shares[i].Zeroize()
	}
	return v, sealed
}

// unwrap opens the shares of the given nodes (0-based) and unwraps blob.
func unwrap(toks []hsm.Token, v *kek.Version, sealed [][]byte, blob []byte, who ...int) ([]byte, error) {
	var shares []threshold.Share
	for _, i := range who {
		sh, err := kekhsm.OpenShare(toks[i], v, uint16(i+1), sealed[i])
		if err != nil {
			return nil, err
		}
		shares = append(shares, *sh)
	}
	k, err := kek.Reconstitute(v, shares)
	if err != nil {
		return nil, err
	}
	defer k.Destroy()
	return k.Unwrap(blob, ctx)
}

func TestThreeNodesAnyTwoUnwrap(t *testing.T) {
	toks, _ := nodes(t, 3)
	v, sealed := deal(t, toks, "backups", 2)
	dek := []byte("data key for the nightly backups")
	blob, err := v.Wrap(rand.Reader, ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][]int{{0, 1}, {0, 2}, {1, 2}} {
		got, err := unwrap(toks, v, sealed, blob, pair...)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("nodes %v: %x, %v", pair, got, err)
		}
	}
	for i := range toks {
		if _, err := unwrap(toks, v, sealed, blob, i); !errors.Is(err, kek.ErrNotEnoughShares) {
			t.Fatalf("node %d alone: got %v, want ErrNotEnoughShares", i+1, err)
		}
	}
}

func TestDestroyedSealingKeyShredsThatShare(t *testing.T) {
	toks, _ := nodes(t, 3)
	v, sealed := deal(t, toks, "shred", 2)
	blob, err := v.Wrap(rand.Reader, ctx, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kekhsm.Destroy(toks[2], v.ID, v.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := unwrap(toks, v, sealed, blob, 0, 2); !errors.Is(err, kek.ErrShareUnavailable) {
		t.Fatalf("node 3's share after destroy: got %v, want ErrShareUnavailable", err)
	}
	// The other nodes' HSMs cannot open node 3's sealed share either.
	for i := range 2 {
		if _, err := kekhsm.OpenShare(toks[i], v, 3, sealed[2]); !errors.Is(err, kek.ErrShareCorrupt) {
			t.Fatalf("node %d opening node 3's share: got %v", i+1, err)
		}
	}
	if _, err := unwrap(toks, v, sealed, blob, 0, 1); err != nil {
		t.Fatalf("nodes 1 and 2 after node 3 destroyed: %v", err)
	}
	for _, tok := range toks[:2] {
		if err := kekhsm.Destroy(tok, v.ID, v.Version); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][]int{{0, 1}, {0, 2}, {1, 2}} {
		if _, err := unwrap(toks, v, sealed, blob, pair...); !errors.Is(err, kek.ErrShareUnavailable) {
			t.Fatalf("nodes %v after crypto-shred: got %v", pair, err)
		}
	}
}

// Sealing keys are token objects: a node that restarts (closes and reopens its
// token) still opens its share.
func TestSharesSurviveReopen(t *testing.T) {
	toks, cfgs := nodes(t, 3)
	v, sealed := deal(t, toks, "durable", 2)
	blob, err := v.Wrap(rand.Reader, ctx, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := toks[0].Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := pkcs11.Open(cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	toks[0] = reopened
	if _, err := unwrap(toks, v, sealed, blob, 0, 1); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	infos, err := reopened.List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range infos {
		found = found || (k.Label == kek.Label("durable", 1) && k.Kind == hsm.KindAES)
	}
	if !found {
		t.Fatalf("sealing key not listed after reopen: %v", infos)
	}
}

func TestThreeOfFive(t *testing.T) {
	toks, _ := nodes(t, 5)
	v, sealed := deal(t, toks, "wide", 3)
	dek := []byte("0123456789abcdef")
	blob, err := v.Wrap(rand.Reader, ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := unwrap(toks, v, sealed, blob, 4, 0, 2); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("3 of 5: %v", err)
	}
	if _, err := unwrap(toks, v, sealed, blob, 1, 3); !errors.Is(err, kek.ErrNotEnoughShares) {
		t.Fatalf("2 of 5: got %v", err)
	}
}

// BenchmarkUnwrap2of3 is the full unwrap path on SoftHSM: two HSM share opens,
// verification, reconstitution, seed derivation and the HPKE open.
func BenchmarkUnwrap2of3(b *testing.B) {
	toks, _ := nodes(b, 3)
	v, sealed := deal(b, toks, "bench", 2)
	blob, err := v.Wrap(rand.Reader, ctx, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := unwrap(toks, v, sealed, blob, 0, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateKEK2of3 deals a version and seals its shares in three tokens.
func BenchmarkCreateKEK2of3(b *testing.B) {
	toks, _ := nodes(b, 3)
	i := 0
	for b.Loop() {
		i++
		deal(b, toks, fmt.Sprintf("create-%d", i), 2)
	}
}
