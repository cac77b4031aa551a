// Cross-checks against the standard library's crypto/hpke, an independent
// HPKE and X-Wing implementation, with the format's info and AAD rebuilt
// here from the spec rather than taken from the package.

package wrapkey_test

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// specInfo is the HPKE info as FORMAT.md writes it.
func specInfo(kekID string, version uint32, ctx map[string]string) []byte {
	info := []byte("custos/v1/wrap")
	info = append(info, byte(len(kekID)))
	info = append(info, kekID...)
	info = binary.BigEndian.AppendUint32(info, version)
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	info = binary.BigEndian.AppendUint16(info, uint16(len(keys)))
	for _, k := range keys {
		info = binary.BigEndian.AppendUint16(info, uint16(len(k)))
		info = append(info, k...)
		info = binary.BigEndian.AppendUint16(info, uint16(len(ctx[k])))
		info = append(info, ctx[k]...)
	}
	return info
}

// specHeader is the blob up to the ciphertext length, which is also the AAD.
func specHeader(kekID string, version uint32, enc []byte) []byte {
	h := []byte{'C', 'S', 'T', 'W', 1, 0x00, 0x01, byte(len(kekID))}
	h = append(h, kekID...)
	h = binary.BigEndian.AppendUint32(h, version)
	h = binary.BigEndian.AppendUint16(h, uint16(len(enc)))
	return append(h, enc...)
}

// splitBlob cuts a suite-1 blob by the spec's offsets, trusting its lengths.
func splitBlob(blob []byte) (kekID string, version uint32, enc, aad, ct []byte, err error) {
	if len(blob) < 8 || len(blob) < 1138+int(blob[7]) {
		return "", 0, nil, nil, nil, errors.New("short blob")
	}
	n := int(blob[7])
	kekID = string(blob[8 : 8+n])
	version = binary.BigEndian.Uint32(blob[8+n:])
	enc = blob[14+n : 1134+n]
	aad = blob[:1134+n]
	ct = blob[1138+n:]
	if int(binary.BigEndian.Uint32(blob[1134+n:])) != len(ct) {
		return "", 0, nil, nil, nil, errors.New("ciphertext length mismatch")
	}
	return kekID, version, enc, aad, ct, nil
}

var (
	stdKEM  = hpke.MLKEM768X25519()
	stdKDF  = hpke.HKDFSHA256()
	stdAEAD = hpke.AES256GCM()
)

// stdOpen opens a blob with crypto/hpke.
func stdOpen(seed, blob []byte, ctx map[string]string) ([]byte, error) {
	kekID, version, enc, aad, ct, err := splitBlob(blob)
	if err != nil {
		return nil, err
	}
	sk, err := stdKEM.NewPrivateKey(seed)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(enc, sk, stdKDF, stdAEAD, specInfo(kekID, version, ctx))
	if err != nil {
		return nil, err
	}
	return r.Open(aad, ct)
}

// stdSeal wraps a DEK with crypto/hpke and lays the blob out by hand.
func stdSeal(pub []byte, kekID string, version uint32, ctx map[string]string, dek []byte) ([]byte, error) {
	pk, err := stdKEM.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	enc, s, err := hpke.NewSender(pk, stdKDF, stdAEAD, specInfo(kekID, version, ctx))
	if err != nil {
		return nil, err
	}
	blob := specHeader(kekID, version, enc)
	ct, err := s.Seal(blob, dek)
	if err != nil {
		return nil, err
	}
	blob = binary.BigEndian.AppendUint32(blob, uint32(len(ct)))
	return append(blob, ct...), nil
}

func TestStdlibPublicKey(t *testing.T) {
	for i := range 20 {
		seed := make([]byte, 32)
		rand.Read(seed)
		if i == 0 {
			seed = make([]byte, 32) // all zero
		}
		sk, err := stdKEM.NewPrivateKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := mustPub(t, seed), sk.PublicKey().Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("seed %x: circl and crypto/hpke public keys differ", seed)
		}
	}
}

func TestStdlibInfo(t *testing.T) {
	for _, ctx := range []wrapkey.Context{nil, ctx1, {"é": "", "e": "x", "E": "y", "ee": "z"}} {
		got, err := wrapkey.Info("k-1", 9, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := specInfo("k-1", 9, ctx); !bytes.Equal(got, want) {
			t.Errorf("Info(%v) = %x, spec gives %x", ctx, got, want)
		}
	}
}

func TestInteropCirclToStdlib(t *testing.T) {
	for i := range 10 {
		seed := testSeed(fmt.Sprint("interop", i))
		dek := make([]byte, 1+i*100)
		rand.Read(dek)
		kekID := fmt.Sprintf("kek-%d", i)
		blob := mustWrap(t, seed, kekID, uint32(i+1), ctx1, dek)
		got, err := stdOpen(seed, blob, ctx1)
		if err != nil {
			t.Fatalf("crypto/hpke cannot open a circl blob: %v", err)
		}
		if !bytes.Equal(got, dek) {
			t.Fatal("crypto/hpke opened a different dek")
		}
		// And crypto/hpke rejects it under another context.
		if _, err := stdOpen(seed, blob, map[string]string{"dataset": "x"}); err == nil {
			t.Fatal("crypto/hpke opened a blob under the wrong context")
		}
	}
}

func TestInteropStdlibToCircl(t *testing.T) {
	for i := range 10 {
		seed := testSeed(fmt.Sprint("interop", i))
		dek := make([]byte, 1+i*100)
		rand.Read(dek)
		kekID := fmt.Sprintf("kek.%d", i)
		blob, err := stdSeal(mustPub(t, seed), kekID, uint32(i+1), ctx1, dek)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wrapkey.Unwrap(seed, kekID, uint32(i+1), blob, ctx1)
		if err != nil {
			t.Fatalf("Unwrap of a crypto/hpke blob: %v", err)
		}
		if !bytes.Equal(got, dek) {
			t.Fatal("Unwrap opened a different dek")
		}
		if _, err := wrapkey.Unwrap(seed, kekID, uint32(i+1), blob, nil); !errors.Is(err, wrapkey.ErrOpen) {
			t.Fatalf("Unwrap of a crypto/hpke blob under the wrong context: got %v, want ErrOpen", err)
		}
	}
}
