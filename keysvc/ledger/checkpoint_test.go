// Checkpoints: body format, signing with ECDSA (crypto.Signer) and
// ML-DSA-65, and every way VerifyCheckpoint must refuse a note.

package ledger_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestCheckpointBody(t *testing.T) {
	c := ledger.Checkpoint{Origin: testOrigin, Size: 20852163, Hash: tlog.RecordHash([]byte("x"))}
	body, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := testOrigin + "\n20852163\n" + base64.StdEncoding.EncodeToString(c.Hash[:]) + "\n"
	if string(body) != want {
		t.Fatalf("Marshal = %q, want %q", body, want)
	}
	got, err := ledger.ParseCheckpoint(body)
	if err != nil || got != c {
		t.Fatalf("ParseCheckpoint = %+v, %v", got, err)
	}
	h := base64.StdEncoding.EncodeToString(c.Hash[:])
	bad := map[string]string{
		"extension line":    want + "ext\n",
		"no final newline":  strings.TrimSuffix(want, "\n"),
		"blank line":        want + "\n",
		"leading zero":      testOrigin + "\n020852163\n" + h + "\n",
		"plus sign":         testOrigin + "\n+20852163\n" + h + "\n",
		"size 2^63":         testOrigin + "\n9223372036854775808\n" + h + "\n",
		"empty size":        testOrigin + "\n\n" + h + "\n",
		"short hash":        testOrigin + "\n1\n" + base64.StdEncoding.EncodeToString(c.Hash[:31]) + "\n",
		"unpadded hash":     testOrigin + "\n1\n" + strings.TrimRight(h, "=") + "\n",
		"non-canonical b64": testOrigin + "\n1\n" + nonCanonicalB64(h) + "\n",
		"empty origin":      "\n1\n" + h + "\n",
		"origin with space": "custos test\n1\n" + h + "\n",
		"origin with plus":  "custos+test\n1\n" + h + "\n",
		"crlf":              testOrigin + "\r\n1\r\n" + h + "\r\n",
	}
	for name, in := range bad {
		_, err := ledger.ParseCheckpoint([]byte(in))
		var pe *ledger.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: ParseCheckpoint(%q) = %v, want *ParseError", name, in, err)
		}
	}
	for _, c := range []ledger.Checkpoint{{Origin: "", Size: 1}, {Origin: "a b"}, {Origin: testOrigin, Size: 1 << 63}} {
		if _, err := c.Marshal(); err == nil {
			t.Errorf("Marshal(%+v) succeeded", c)
		}
	}
}

func signedAt(t *testing.T, n node, size uint64) (ledger.Checkpoint, []byte) {
	c := ledger.Checkpoint{Origin: testOrigin, Size: size, Hash: tlog.RecordHash([]byte(fmt.Sprint(size)))}
	return c, n.Sign(t, c)
}

// sigLines splits a signed note into text and signature lines.
func sigLines(t *testing.T, msg []byte) (text string, lines []string) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("not a note: %q", msg)
	}
	return string(msg[:i+1]), strings.SplitAfter(string(msg[i+2:]), "\n")[:strings.Count(string(msg[i+2:]), "\n")]
}

func joinNote(text string, lines ...string) []byte {
	return []byte(text + "\n" + strings.Join(lines, ""))
}

// flipSig flips one bit in the signature (not the key ID) of a line.
func flipSig(t *testing.T, line string) string {
	i := strings.LastIndex(line, " ")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line[i+1:], "\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	return line[:i+1] + base64.StdEncoding.EncodeToString(raw) + "\n"
}

func TestSignVerifyCheckpoint(t *testing.T) {
	a, b, stranger := testNode(t, "custos.test/node-a"), testNode(t, "custos.test/node-b"), testNode(t, "custos.test/evil")
	c, msg := signedAt(t, a, 42)

	got, signer, err := ledger.VerifyCheckpoint(msg, testOrigin, b.Key, a.Key)
	if err != nil || got != c || signer != a.Name {
		t.Fatalf("VerifyCheckpoint = %+v, %q, %v", got, signer, err)
	}
	text, lines := sigLines(t, msg)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "— "+a.Name+" ") {
		t.Fatalf("signature lines: %q", lines)
	}
	ecLine, mlLine := lines[0], lines[1]
	// Each line's key ID matches the vkey; the ECDSA one is SHA-256(SPKI)[:4].
	spki, _ := x509.MarshalPKIXPublicKey(&a.EC.PublicKey)
	sum := sha256.Sum256(spki)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(ecLine[strings.LastIndex(ecLine, " ")+1:]))
	if !bytes.Equal(raw[:4], sum[:4]) {
		t.Fatalf("ecdsa key id %x, want %x", raw[:4], sum[:4])
	}

	_, bmsg := signedAt(t, b, 42)
	_, blines := sigLines(t, bmsg)
	witness, _ := note.NewSigner(mustEd25519Skey(t))
	witnessed, err := note.Sign(&note.Note{Text: text}, witness)
	if err != nil {
		t.Fatal(err)
	}
	_, wlines := sigLines(t, witnessed)

	refuse := map[string]struct {
		msg     []byte
		trusted []ledger.NodeKey
		want    error
	}{
		"ecdsa missing":       {joinNote(text, mlLine), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointUntrusted},
		"ml-dsa missing":      {joinNote(text, ecLine), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointUntrusted},
		"ecdsa flipped":       {joinNote(text, flipSig(t, ecLine), mlLine), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointSignature},
		"ml-dsa flipped":      {joinNote(text, ecLine, flipSig(t, mlLine)), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointSignature},
		"ml-dsa truncated":    {joinNote(text, ecLine, mlLine[:len(mlLine)-9]+"\n"), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointSignature},
		"untrusted signer":    {msg, []ledger.NodeKey{b.Key, stranger.Key}, ledger.ErrCheckpointUntrusted},
		"no trusted keys":     {msg, nil, ledger.ErrCheckpointUntrusted},
		"other origin":        {msg, []ledger.NodeKey{a.Key}, ledger.ErrCheckpointOrigin},
		"size changed":        {joinNote(strings.Replace(text, "\n42\n", "\n43\n", 1), lines...), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointSignature},
		"halves of two nodes": {joinNote(text, ecLine, blines[1]), []ledger.NodeKey{a.Key, b.Key}, ledger.ErrCheckpointUntrusted},
		"witness only":        {joinNote(text, wlines...), []ledger.NodeKey{a.Key}, ledger.ErrCheckpointUntrusted},
		"no signatures":       {[]byte(text + "\n"), []ledger.NodeKey{a.Key}, ledger.ErrMalformedCheckpoint},
		"body not canonical":  {nil, []ledger.NodeKey{a.Key}, ledger.ErrMalformedCheckpoint},
		"too large":           {append(bytes.Repeat([]byte("x"), ledger.MaxCheckpointSize), msg...), []ledger.NodeKey{a.Key}, ledger.ErrMalformedCheckpoint},
	}
	// A correctly signed but non-canonical body (an extension line).
	ecs, err := ledger.NewECDSASigner(a.Name, a.EC)
	if err != nil {
		t.Fatal(err)
	}
	mls, err := ledger.NewMLDSASigner(a.Name, a.ML)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := note.Sign(&note.Note{Text: text + "ext\n"}, ecs, mls)
	if err != nil {
		t.Fatal(err)
	}
	r := refuse["body not canonical"]
	r.msg = ext
	refuse["body not canonical"] = r

	for name, r := range refuse {
		origin := testOrigin
		if name == "other origin" {
			origin = "custos.test/eu-2"
		}
		_, _, err := ledger.VerifyCheckpoint(r.msg, origin, r.trusted...)
		var ce *ledger.CheckpointError
		if !errors.As(err, &ce) || !errors.Is(err, r.want) {
			t.Errorf("%s: err = %v, want *CheckpointError wrapping %v", name, err, r.want)
		}
	}

	// Accepted: extra unknown signatures (a witness, another node) are ignored,
	// and a node with both signatures wins over one with only one.
	for name, m := range map[string][]byte{
		"with witness":             joinNote(text, ecLine, wlines[0], mlLine),
		"with half of other node":  joinNote(text, blines[0], ecLine, mlLine),
		"both nodes signed":        joinNote(text, append(append([]string{}, blines...), lines...)...),
		"duplicate signature line": joinNote(text, ecLine, ecLine, mlLine),
	} {
		got, signer, err := ledger.VerifyCheckpoint(m, testOrigin, a.Key, b.Key)
		if err != nil || got != c {
			t.Errorf("%s: VerifyCheckpoint = %+v, %q, %v", name, got, signer, err)
		}
		if name != "both nodes signed" && signer != a.Name {
			t.Errorf("%s: signer %q", name, signer)
		}
	}
	// The same key listed twice is not an error.
	if _, _, err := ledger.VerifyCheckpoint(msg, testOrigin, a.Key, a.Key); err != nil {
		t.Fatalf("duplicate trusted key: %v", err)
	}
}

func mustEd25519Skey(t *testing.T) string {
	skey, _, err := note.GenerateKey(rand.Reader, "witness.test")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

type badSigner struct {
	crypto.Signer
	out []byte
}

func (s badSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return s.out, nil }

func TestSignCheckpointRefusesBadKeys(t *testing.T) {
	a := testNode(t, "custos.test/node-a")
	c := ledger.Checkpoint{Origin: testOrigin, Size: 1}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSig, _ := other.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	for name, s := range map[string]crypto.Signer{
		"p-384":           p384,
		"ed25519":         edKey,
		"garbage sig":     badSigner{a.EC, []byte{0x30, 0x00}},
		"other key's sig": badSigner{a.EC, otherSig},
	} {
		if _, err := ledger.SignCheckpoint(c, a.Name, s, a.ML); err == nil {
			t.Errorf("%s: SignCheckpoint succeeded", name)
		}
	}
	if _, err := ledger.SignCheckpoint(c, "bad name", a.EC, a.ML); err == nil {
		t.Error("SignCheckpoint accepted a name with a space")
	}
	if _, err := ledger.SignCheckpoint(c, a.Name, a.EC, nil); err == nil {
		t.Error("SignCheckpoint accepted a nil ml-dsa key")
	}
	if _, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "bad origin"}, a.Name, a.EC, a.ML); err == nil {
		t.Error("SignCheckpoint accepted a bad origin")
	}
}

func TestNodeKeysText(t *testing.T) {
	a, b := testNode(t, "custos.test/node-a"), testNode(t, "custos.test/node-b")
	ta, err := a.Key.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := b.Key.MarshalText()
	file := "# trusted custos nodes\n\n" + string(ta) + string(tb)
	keys, err := ledger.ParseNodeKeys([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Name != a.Name || keys[1].Name != b.Name ||
		!keys[0].ECDSA.Equal(a.Key.ECDSA) || !keys[0].MLDSA.Equal(a.Key.MLDSA) || !keys[1].MLDSA.Equal(b.Key.MLDSA) {
		t.Fatalf("ParseNodeKeys = %+v", keys)
	}
	var one ledger.NodeKey
	if err := one.UnmarshalText(ta); err != nil || one.Name != a.Name || !one.ECDSA.Equal(a.Key.ECDSA) || !one.MLDSA.Equal(a.Key.MLDSA) {
		t.Fatalf("UnmarshalText = %+v, %v", one, err)
	}
	if err := one.UnmarshalText([]byte(file)); err == nil {
		t.Fatal("UnmarshalText accepted two nodes")
	}
	_, msg := signedAt(t, a, 5)
	if _, signer, err := ledger.VerifyCheckpoint(msg, testOrigin, keys...); err != nil || signer != a.Name {
		t.Fatalf("verify with parsed keys: %q %v", signer, err)
	}
	// Each line is also a note verifier that sumdb/note can use directly.
	lines := strings.Split(strings.TrimSpace(string(ta)), "\n")
	var vs []note.Verifier
	for _, l := range lines {
		v, err := ledger.NewVerifier(l)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if n, err := note.Open(msg, note.VerifierList(vs...)); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("note.Open with NewVerifier keys: %v", err)
	}

	ecLine, mlLine := lines[0], lines[1]
	name, hash, key := splitVKey(ecLine)
	bad := map[string]string{
		"ecdsa only":        ecLine + "\n",
		"ml-dsa only":       mlLine + "\n",
		"two ecdsa":         ecLine + "\n" + ecLine + "\n" + mlLine + "\n",
		"uppercase hash":    name + "+" + strings.ToUpper(hash) + "+" + key,
		"wrong hash":        name + "+00000000+" + key,
		"short hash":        name + "+" + hash[1:] + "+" + key,
		"bad base64":        name + "+" + hash + "+" + key[1:],
		"unknown type":      name + "+" + hash + "+AQ" + key[2:],
		"missing part":      name + "+" + hash,
		"space in name":     "a b+" + hash + "+" + key,
		"renamed ml-dsa":    strings.Replace(mlLine, a.Name, b.Name, 1) + "\n" + ecLine,
		"ed25519 note vkey": mustEd25519Vkey(t),
	}
	for what, in := range bad {
		_, err := ledger.ParseNodeKeys([]byte(in))
		var pe *ledger.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: ParseNodeKeys = %v, want *ParseError", what, err)
		}
	}
}

func splitVKey(s string) (name, hash, key string) {
	parts := strings.SplitN(s, "+", 3)
	return parts[0], parts[1], parts[2]
}

func mustEd25519Vkey(t *testing.T) string {
	_, vkey, err := note.GenerateKey(rand.Reader, "custos.test/node-a")
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// nonCanonicalB64 sets the unused low bit of the last character of a
// padded base64 encoding of 32 bytes: lax decoders accept it.
func nonCanonicalB64(h string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, h[42])
	return h[:42] + string(alphabet[i^1]) + h[43:]
}
