package officer_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"alice", "a", "bob-2", "a.b_c-d", "0", strings.Repeat("x", 63)} {
		if err := officer.ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "Alice", "al ice", "alice/", "../x", "a..b", ".alice", "alice.", "-alice", "alice_", "é", strings.Repeat("x", 64), "a\x00"} {
		if err := officer.ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", bad)
		}
	}
}

func TestPublicKeyRoundTrip(t *testing.T) {
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) {
			s := generate(t, "alice", alg)
			pub := s.Public()
			enc := pub.Marshal()
			if !bytes.HasPrefix(enc, []byte(`{"format":"custos-officer-public-key/v1","officer":"alice","classical":"`+string(alg)+`","classical_key":"`)) {
				t.Fatalf("encoding starts %.100s", enc)
			}
			if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(pub.Fingerprint()) {
				t.Fatalf("fingerprint %q", pub.Fingerprint())
			}
			for _, in := range [][]byte{enc, append(bytes.Clone(enc), '\n')} {
				got, err := officer.ParsePublicKey(in)
				if err != nil {
					t.Fatal(err)
				}
				if !got.Equal(pub) || got.Fingerprint() != pub.Fingerprint() || !bytes.Equal(got.Marshal(), enc) {
					t.Fatal("parse of the encoding is not the same key")
				}
			}
			if got := pub.Name(); got != "alice" {
				t.Errorf("Name() = %q", got)
			}
			if got := pub.Alg(); got != alg {
				t.Errorf("Alg() = %q", got)
			}
			switch k := pub.ClassicalKey().(type) {
			case *ecdsa.PublicKey:
				if alg != officer.ECDSAP256 {
					t.Errorf("ClassicalKey() is ECDSA for %s", alg)
				}
			case ed25519.PublicKey:
				if alg != officer.Ed25519 || len(k) != 32 {
					t.Errorf("ClassicalKey() is Ed25519 for %s", alg)
				}
			default:
				t.Errorf("ClassicalKey() is %T", k)
			}
			if len(pub.MLDSA65Key()) != officer.MLDSA65PublicKeySize || len(pub.XWingKey()) != officer.XWingPublicKeySize {
				t.Error("key sizes")
			}
		})
	}
}

func TestPublicKeyAccessorsReturnCopies(t *testing.T) {
	pub := generate(t, "alice", officer.Ed25519).Public()
	fp := pub.Fingerprint()
	pub.MLDSA65Key()[0] ^= 1
	pub.XWingKey()[0] ^= 1
	pub.Marshal()[0] = 'X'
	pub.ClassicalKey().(ed25519.PublicKey)[0] ^= 1
	again, err := officer.ParsePublicKey(pub.Marshal())
	if err != nil || again.Fingerprint() != fp {
		t.Fatalf("the key changed through an accessor: %v", err)
	}
}

func TestPublicKeyDiffers(t *testing.T) {
	a := generate(t, "alice", officer.ECDSAP256).Public()
	b := generate(t, "alice", officer.ECDSAP256).Public()
	if a.Equal(b) || a.Fingerprint() == b.Fingerprint() {
		t.Fatal("two generated keys are equal")
	}
	if (&officer.PublicKey{}).Equal(&officer.PublicKey{}) {
		t.Fatal("zero keys are equal")
	}
}

// ceremonyDoc stands for a genesis or officer-add document embedding bundles.
type ceremonyDoc struct {
	Officers []*officer.PublicKey `json:"officers"`
	Sig      officer.Signature    `json:"sig"`
}

func TestJSONEmbedding(t *testing.T) {
	s := generate(t, "alice", officer.ECDSAP256)
	sig, err := s.Sign(randomDigest(t))
	if err != nil {
		t.Fatal(err)
	}
	doc := ceremonyDoc{Officers: []*officer.PublicKey{s.Public()}, Sig: sig}
	for _, indent := range []bool{false, true} {
		var b []byte
		if indent {
			b, err = json.MarshalIndent(doc, "", "  ")
		} else {
			b, err = json.Marshal(doc)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !indent && !bytes.Contains(b, s.Public().Marshal()) {
			t.Fatal("embedded bundle is not the canonical encoding")
		}
		var back ceremonyDoc
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("indent=%v: %v", indent, err)
		}
		if len(back.Officers) != 1 || !back.Officers[0].Equal(s.Public()) || !bytes.Equal(back.Sig.Marshal(), sig.Marshal()) {
			t.Fatalf("indent=%v: round trip changed the document", indent)
		}
	}
	// Embedded, the bundle is as strict as anywhere else (whitespace aside).
	bad := bytes.Replace(s.Public().Marshal(), []byte(`"officer":"alice"`), []byte(`"officer":"\u0061lice"`), 1)
	var back ceremonyDoc
	err = json.Unmarshal([]byte(`{"officers":[`+string(bad)+`]}`), &back)
	var perr *officer.ParseError
	if !errors.As(err, &perr) {
		t.Fatalf("escaped officer id in an embedded bundle: %v, want a *ParseError", err)
	}
	if _, err := json.Marshal(&officer.PublicKey{}); err == nil {
		t.Fatal("marshalling a zero PublicKey succeeded")
	}
}

// setField replaces one JSON field's value in a canonical encoding.
func setField(t *testing.T, enc []byte, field, value string) []byte {
	t.Helper()
	re := regexp.MustCompile(`"` + field + `":("[^"]*"|[^,}]*)`)
	if !re.Match(enc) {
		t.Fatalf("no field %s", field)
	}
	return re.ReplaceAllLiteral(enc, []byte(`"`+field+`":`+value))
}

func b64(b []byte) string { return `"` + base64.StdEncoding.EncodeToString(b) + `"` }

func TestParsePublicKeyRejects(t *testing.T) {
	ec := generate(t, "alice", officer.ECDSAP256).Public()
	ed := generate(t, "bob", officer.Ed25519).Public()
	enc := ec.Marshal()

	notOnCurve := ec.ClassicalKey().(*ecdsa.PublicKey)
	point, _ := notOnCurve.Bytes()
	point[64] ^= 1
	compressed, _ := notOnCurve.Bytes()
	compressed = append([]byte{2 + compressed[64]&1}, compressed[1:33]...)
	xwingOutOfRange := ec.XWingKey()
	xwingOutOfRange[0], xwingOutOfRange[1] = 0xff, 0x0f // first ML-KEM coefficient 4095 >= q
	keyB64 := base64.StdEncoding.EncodeToString(ec.MLDSA65Key())
	nonCanonicalB64 := keyB64[:len(keyB64)-2] + string(keyB64[len(keyB64)-2]+1) + "=" // last char before padding +1: stray bits

	cases := []struct {
		name, field string
		in          []byte
	}{
		{"empty", "", nil},
		{"null", "", []byte("null")},
		{"not json", "", []byte("alice sha256:00")},
		{"two newlines", "", append(bytes.Clone(enc), '\n', '\n')},
		{"crlf", "", append(bytes.Clone(enc), '\r', '\n')},
		{"leading space", "", append([]byte(" "), enc...)},
		{"space after colon", "", bytes.Replace(enc, []byte(`"officer":`), []byte(`"officer": `), 1)},
		{"indented", "", mustIndent(t, enc)},
		{"trailing data", "", append(bytes.Clone(enc), []byte(`{}`)...)},
		{"unknown field", "", bytes.Replace(enc, []byte(`{"format"`), []byte(`{"comment":"x","format"`), 1)},
		{"duplicate field", "", bytes.Replace(enc, []byte(`"officer":"alice"`), []byte(`"officer":"mallory","officer":"alice"`), 1)},
		{"field order", "", swapFirstFields(enc)},
		{"upper-case field name", "", bytes.Replace(enc, []byte(`"officer"`), []byte(`"Officer"`), 1)},
		{"escaped officer", "", bytes.Replace(enc, []byte(`"alice"`), []byte(`"\u0061lice"`), 1)},
		{"non-canonical base64", "", setField(t, enc, "mldsa65_key", `"`+nonCanonicalB64+`"`)},
		{"unpadded base64", "", setField(t, enc, "mldsa65_key", `"`+strings.TrimRight(keyB64, "=")+`"`)},
		{"missing field", "mldsa65_key", regexp.MustCompile(`,"mldsa65_key":"[^"]*"`).ReplaceAll(enc, nil)},
		{"wrong format", "format", setField(t, enc, "format", `"custos-officer-public-key/v2"`)},
		{"bad officer id", "officer", setField(t, enc, "officer", `"Alice"`)},
		{"empty officer id", "officer", setField(t, enc, "officer", `""`)},
		{"unknown alg", "classical", setField(t, enc, "classical", `"rsa"`)},
		{"alg mismatch", "classical_key", setField(t, enc, "classical", `"ed25519"`)},
		{"p256 not on curve", "classical_key", setField(t, enc, "classical_key", b64(point))},
		{"p256 compressed", "classical_key", setField(t, enc, "classical_key", b64(compressed))},
		{"ed25519 short", "classical_key", setField(t, ed.Marshal(), "classical_key", b64(make([]byte, 31)))},
		{"mldsa short", "mldsa65_key", setField(t, enc, "mldsa65_key", b64(ec.MLDSA65Key()[1:]))},
		{"xwing short", "xwing_key", setField(t, enc, "xwing_key", b64(ec.XWingKey()[1:]))},
		{"xwing out of range", "xwing_key", setField(t, enc, "xwing_key", b64(xwingOutOfRange))},
		{"key as number", "", setField(t, enc, "xwing_key", `12`)},
		{"huge", "", bytes.Repeat([]byte(" "), 9000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pk, err := officer.ParsePublicKey(c.in)
			var perr *officer.ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("got %v, %v; want a *ParseError", pk, err)
			}
			if perr.Format != "public key" || perr.Field != c.field {
				t.Fatalf("error %q: format %q field %q, want field %q", err, perr.Format, perr.Field, c.field)
			}
		})
	}
}

func mustIndent(t *testing.T, enc []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, enc, "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// swapFirstFields puts "officer" before "format".
func swapFirstFields(enc []byte) []byte {
	re := regexp.MustCompile(`^\{("format":"[^"]*"),("officer":"[^"]*")`)
	return re.ReplaceAll(enc, []byte(`{$2,$1`))
}
