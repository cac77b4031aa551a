package reqsig_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

func signed(t testing.TB, ca *identity.CA, id identity.Identity, r reqsig.Request) reqsig.Signed {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(id, identity.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := parsePair(t, certPEM, keyPEM)
	msg, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := reqsig.Sign(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return reqsig.Signed{Message: msg, Signature: sig, Cert: cert.Raw}
}

func TestSignVerify(t *testing.T) {
	ca, err := identity.NewCA("c1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	now := time.Now()
	ctxHash, _ := reqsig.ContextHash(wrapkey.Context{"dataset": "db"})
	r := reqsig.Request{Cluster: "c1", Op: reqsig.OpUnwrap, KEKID: "k1", Version: 1, Body: reqsig.BodyHash([]byte("blob")),
		Context: ctxHash, RequestID: reqsig.NewRequestID(), Time: now.Unix()}
	agent := identity.Identity{Cluster: "c1", Name: "a1", Role: identity.RoleAgent, Region: "DE"}
	s := signed(t, ca, agent, r)
	opts := reqsig.Options{Cluster: "c1", Roots: roots, Now: now}
	v, err := s.Verify(opts)
	if err != nil || v.Identity != agent || v.Request != r {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	if err := v.Request.Matches(r); err != nil {
		t.Fatal(err)
	}
	other := r
	other.Body = reqsig.BodyHash([]byte("other"))
	if reqsig.CodeOf(v.Request.Matches(other)) != reqsig.CodeMismatch {
		t.Error("a different body matched")
	}
	// Each attack fails with its own code.
	cases := map[string]struct {
		s    reqsig.Signed
		o    reqsig.Options
		code string
	}{
		"tampered": {reqsig.Signed{Message: append([]byte{}, s.Message...), Signature: s.Signature, Cert: s.Cert}, opts, reqsig.CodeMalformed},
		"stale":    {s, reqsig.Options{Cluster: "c1", Roots: roots, Now: now.Add(10 * time.Minute)}, reqsig.CodeStale},
		"cluster":  {s, reqsig.Options{Cluster: "c2", Roots: roots, Now: now}, reqsig.CodeMismatch},
		"revoked":  {s, reqsig.Options{Cluster: "c1", Roots: roots, Now: now, Revoked: func(identity.Identity, string) bool { return true }}, reqsig.CodeUntrusted},
		"no roots": {s, reqsig.Options{Cluster: "c1", Now: now}, reqsig.CodeUntrusted},
	}
	cases["tampered"].s.Message[len("custos-request-v1\ncluster c1\nop ")] = 'x'
	bad := s
	bad.Signature = append([]byte{}, s.Signature...)
	bad.Signature[len(bad.Signature)-1] ^= 1
	cases["bad signature"] = struct {
		s    reqsig.Signed
		o    reqsig.Options
		code string
	}{bad, opts, reqsig.CodeInvalid}
	other2, _ := identity.NewCA("c1", time.Hour)
	cases["other ca"] = struct {
		s    reqsig.Signed
		o    reqsig.Options
		code string
	}{signed(t, other2, agent, r), opts, reqsig.CodeUntrusted}
	for name, c := range cases {
		_, err := c.s.Verify(c.o)
		var e *reqsig.Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: Verify = %v, want code %s", name, err, c.code)
		}
	}
}

func TestParseCanonical(t *testing.T) {
	r := reqsig.Request{Cluster: "c1", Op: reqsig.OpWrap, KEKID: "k1", RequestID: "abcdefgh", Time: 1}
	msg, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := reqsig.Parse(msg)
	if err != nil || got != r {
		t.Fatalf("Parse = %+v, %v", got, err)
	}
	for _, bad := range [][]byte{
		append(append([]byte{}, msg...), '\n'),
		msg[:len(msg)-1],
		[]byte(string(msg[:len(msg)-2]) + "01\n"),
	} {
		if _, err := reqsig.Parse(bad); reqsig.CodeOf(err) != reqsig.CodeMalformed {
			t.Errorf("Parse(%q) = %v", bad, err)
		}
	}
}

// Parse never panics, accepts only what Marshal writes back byte for byte,
// and fails only with *reqsig.Error; the header decoder likewise.
func FuzzParse(f *testing.F) {
	var vf struct {
		Requests []struct {
			Message string `json:"message"`
			Header  string `json:"header"`
		} `json:"requests"`
		Malformed []struct {
			Message string `json:"message"`
		} `json:"malformed"`
	}
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(raw, &vf); err != nil {
		f.Fatal(err)
	}
	for _, v := range vf.Requests {
		f.Add([]byte(v.Message))
		f.Add([]byte(v.Header))
	}
	for _, v := range vf.Malformed {
		f.Add([]byte(v.Message))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := reqsig.Parse(b)
		if err != nil {
			var e *reqsig.Error
			if !errors.As(err, &e) || e.Code != reqsig.CodeMalformed {
				t.Fatalf("Parse error %T %v, want a *reqsig.Error with code %s", err, err, reqsig.CodeMalformed)
			}
		} else {
			again, err := r.Marshal()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("Parse→Marshal = %q, %v; want %q", again, err, b)
			}
			if r2, err := reqsig.Parse(again); err != nil || r2 != r {
				t.Fatalf("Parse of Marshal = %+v, %v", r2, err)
			}
		}
		if msg, sig, err := reqsig.DecodeHeader(string(b)); err != nil {
			var e *reqsig.Error
			if !errors.As(err, &e) {
				t.Fatalf("DecodeHeader error %T %v", err, err)
			}
		} else if reqsig.EncodeHeader(msg, sig) != string(b) {
			t.Fatalf("DecodeHeader→EncodeHeader does not round-trip %q", b)
		}
	})
}

// BenchmarkVerify: a request's checks with the chain (a peer's case) and
// with a leaf the TLS handshake verified (the API's case).
func BenchmarkVerify(b *testing.B) {
	ca, _ := identity.NewCA("c1", time.Hour)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	r := reqsig.Request{Cluster: "c1", Op: reqsig.OpUnwrap, KEKID: "k1", Version: 1, RequestID: reqsig.NewRequestID(), Time: time.Now().Unix()}
	s := signed(b, ca, identity.Identity{Cluster: "c1", Name: "a1", Role: identity.RoleAgent, Region: "DE"}, r)
	leaf, _ := x509.ParseCertificate(s.Cert)
	for _, bc := range []struct {
		name string
		leaf *x509.Certificate
	}{{"chain", nil}, {"leaf", leaf}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Verify(reqsig.Options{Cluster: "c1", Roots: roots, Now: time.Now(), Leaf: bc.leaf}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDetails: a signed request survives a log entry's details, and a
// missing or garbled detail is named.
func TestDetails(t *testing.T) {
	s := reqsig.Signed{Message: []byte("m"), Signature: []byte("s"), Cert: []byte("c")}
	d := map[string]string{"ttl_seconds": "0"}
	s.AddDetails(d)
	got, err := reqsig.FromDetails(d)
	if err != nil || string(got.Message) != "m" || string(got.Signature) != "s" || string(got.Cert) != "c" || d["ttl_seconds"] != "0" {
		t.Fatalf("FromDetails(AddDetails) = %+v, %v", got, err)
	}
	for _, key := range []string{reqsig.DetailRequest, reqsig.DetailSignature, reqsig.DetailCert} {
		bad := map[string]string{}
		s.AddDetails(bad)
		bad[key] = "not base64!"
		if _, err := reqsig.FromDetails(bad); reqsig.CodeOf(err) != reqsig.CodeMalformed || !strings.Contains(err.Error(), key) {
			t.Errorf("garbled %s: %v", key, err)
		}
	}
}
