package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
)

func TestNewCA(t *testing.T) {
	ca, err := identity.NewCA("prod", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if ca.Cluster() != "prod" || c.Subject.CommonName != "custos prod CA" {
		t.Errorf("cluster %q, CN %q", ca.Cluster(), c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: CA %v valid %v maxpath %d zero %v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("no certSign key usage")
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if d := c.NotAfter.Sub(time.Now()); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("NotAfter in %v, want about 24h", d)
	}
	if !parsePEM(t, ca.CertPEM()).Equal(c) {
		t.Error("CertPEM is not the certificate")
	}

	// MaxPathLen 0: a certificate issued by a CA under this CA does not verify.
	tc := newTestCA(t, "prod")
	subTmpl := &x509.Certificate{IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	subPEM, subKeyPEM := tc.signRaw(t, subTmpl)
	sub := parsePEM(t, subPEM)
	b, _ := pem.Decode(subKeyPEM)
	subKey, _ := x509.ParsePKCS8PrivateKey(b.Bytes)
	leafPEM, _ := signWith(t, &x509.Certificate{URIs: []*url.URL{identity.Identity{Cluster: "prod", Name: "n", Role: "agent", Region: "FR"}.URI()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, sub, subKey.(*ecdsa.PrivateKey))
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(tc.Certificate())
	inter.AddCert(sub)
	if _, err := parsePEM(t, leafPEM).Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil || !strings.Contains(err.Error(), "path length") {
		t.Errorf("a sub-CA's leaf under a MaxPathLen 0 CA: %v, want a path length error", err)
	}

	for _, bad := range []string{"", "Prod", "a/b", "a b", "-a"} {
		if _, err := identity.NewCA(bad, time.Hour); err == nil {
			t.Errorf("NewCA(%q) succeeded", bad)
		}
	}
	if _, err := identity.NewCA("prod", -time.Hour); err == nil {
		t.Error("negative validity accepted")
	}
	ca, err = identity.NewCA("prod", 0)
	if err != nil || ca.Certificate().NotAfter.Sub(time.Now()) < identity.DefaultCAValidity-time.Hour {
		t.Errorf("zero validity: %v, NotAfter %v", err, ca.Certificate().NotAfter)
	}
}

func TestIssueRejects(t *testing.T) {
	ca, err := identity.NewCA("prod", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agent := identity.Identity{Cluster: "prod", Name: "a", Role: identity.RoleAgent, Region: "FR"}
	for _, tc := range []struct {
		name string
		id   identity.Identity
		opts identity.IssueOptions
		want string
	}{
		{"invalid identity", identity.Identity{Cluster: "prod", Name: "A", Role: identity.RoleAgent, Region: "FR"}, identity.IssueOptions{}, "name"},
		{"unknown role", identity.Identity{Cluster: "prod", Name: "a", Role: "admin", Region: "FR"}, identity.IssueOptions{}, "role"},
		{"non-EEA region", identity.Identity{Cluster: "prod", Name: "a", Role: identity.RoleAgent, Region: "US"}, identity.IssueOptions{}, "region"},
		{"other cluster", identity.Identity{Cluster: "dev", Name: "a", Role: identity.RoleAgent, Region: "FR"}, identity.IssueOptions{}, "another cluster"},
		{"client with DNS name", agent, identity.IssueOptions{DNSNames: []string{"localhost"}}, "only node"},
		{"client with IP", agent, identity.IssueOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, "only node"},
		{"negative validity", agent, identity.IssueOptions{Validity: -time.Second}, "negative"},
		{"starts after the CA ends", agent, identity.IssueOptions{NotBefore: time.Now().Add(2 * time.Hour)}, "CA expires"},
	} {
		certPEM, keyPEM, err := ca.Issue(tc.id, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || certPEM != nil || keyPEM != nil {
			t.Errorf("%s: Issue = %v; want an error saying %q and nothing else", tc.name, err, tc.want)
		}
	}
	if _, _, err := ca.Issue(identity.Identity{Cluster: "dev", Name: "a", Role: identity.RoleAgent, Region: "FR"},
		identity.IssueOptions{}); !errors.Is(err, identity.ErrWrongCluster) {
		t.Errorf("other cluster: %v is not ErrWrongCluster", err)
	}
}

func TestIssueValidity(t *testing.T) {
	ca, err := identity.NewCA("prod", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Cluster: "prod", Name: "a", Role: identity.RoleAgent, Region: "FR"}
	issue := func(opts identity.IssueOptions) *x509.Certificate {
		certPEM, _, err := ca.Issue(id, opts)
		if err != nil {
			t.Fatal(err)
		}
		return parsePEM(t, certPEM)
	}
	now := time.Now()
	c := issue(identity.IssueOptions{Validity: time.Hour})
	if c.NotBefore.After(now) || c.NotBefore.Before(now.Add(-10*time.Minute)) {
		t.Errorf("NotBefore %v, want a little before %v", c.NotBefore, now)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d != time.Hour {
		t.Errorf("lifetime %v, want 1h", d)
	}
	// Zero (one year by default) and longer ones end with the CA.
	for _, v := range []time.Duration{0, 1000 * time.Hour} {
		if c := issue(identity.IssueOptions{Validity: v}); !c.NotAfter.Equal(ca.Certificate().NotAfter) {
			t.Errorf("validity %v: NotAfter %v, want the CA's %v", v, c.NotAfter, ca.Certificate().NotAfter)
		}
	}
	nb := now.Add(time.Hour).Truncate(time.Second)
	if c := issue(identity.IssueOptions{NotBefore: nb, Validity: time.Minute}); !c.NotBefore.Equal(nb) || !c.NotAfter.Equal(nb.Add(time.Minute)) {
		t.Errorf("NotBefore %v NotAfter %v", c.NotBefore, c.NotAfter)
	}
}

func TestSerialsRandom(t *testing.T) {
	ca, err := identity.NewCA("prod", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Cluster: "prod", Name: "a", Role: identity.RoleAgent, Region: "FR"}
	seen := map[string]bool{ca.Certificate().SerialNumber.String(): true}
	long := 0
	for range 32 {
		certPEM, _, err := ca.Issue(id, identity.IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := parsePEM(t, certPEM).SerialNumber
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Fatalf("serial %v: not positive or over 128 bits", s)
		}
		if s.BitLen() > 120 {
			long++
		}
		if seen[s.String()] {
			t.Fatalf("serial %v repeated", s)
		}
		seen[s.String()] = true
	}
	if long < 16 { // each is over 120 bits with probability 1-2^-8
		t.Errorf("only %d of 32 serials over 120 bits: not 128 random bits", long)
	}
}

func TestWriteAndLoadCA(t *testing.T) {
	tc := newTestCA(t, "prod")
	for file, want := range map[string]os.FileMode{tc.certFile: 0o644, tc.keyFile: 0o600} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		// The umask may only take permissions away.
		if fi.Mode().Perm()&^want != 0 || file == tc.keyFile && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want %v", filepath.Base(file), fi.Mode().Perm(), want)
		}
	}
	keyPEM, _ := os.ReadFile(tc.keyFile)
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key file is not PKCS #8 PEM")
	}

	loaded, err := identity.LoadCA(tc.certFile, tc.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Cluster() != "prod" || !loaded.Certificate().Equal(tc.Certificate()) {
		t.Fatalf("loaded CA for %q, %v", loaded.Cluster(), loaded.Certificate().Subject)
	}
	// What the loaded CA issues verifies under the original CA file.
	files := (&testCA{CA: loaded, certFile: tc.certFile}).issue(t,
		identity.Identity{Cluster: "prod", Name: "n1", Role: identity.RoleNode, Region: "DE"}, localhost)
	if _, err := identity.ServerConfig(files); err != nil {
		t.Fatalf("certificate from the loaded CA: %v", err)
	}

	// Never overwrite: both files stay as they were.
	other, _ := identity.NewCA("prod", time.Hour)
	newCert := filepath.Join(t.TempDir(), "new.pem")
	if err := other.WriteFiles(newCert, tc.keyFile); !errors.Is(err, os.ErrExist) {
		t.Errorf("WriteFiles over an existing key: %v, want ErrExist", err)
	}
	if _, err := os.Stat(newCert); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("certificate written although the key file exists")
	}
	if after, _ := os.ReadFile(tc.keyFile); string(after) != string(keyPEM) {
		t.Error("key file overwritten")
	}
	newKey := filepath.Join(t.TempDir(), "new-key.pem")
	if err := other.WriteFiles(tc.certFile, newKey); !errors.Is(err, os.ErrExist) {
		t.Errorf("WriteFiles over an existing certificate: %v, want ErrExist", err)
	}
	if _, err := os.Stat(newKey); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key left behind although the certificate file exists")
	}
	if loaded, err := identity.LoadCA(tc.certFile, tc.keyFile); err != nil || !loaded.Certificate().Equal(tc.Certificate()) {
		t.Errorf("CA files changed: %v", err)
	}

	// A key that does not match, SEC 1 keys, a CA whose name is not ours.
	otherDir := t.TempDir()
	otherCert, otherKey := filepath.Join(otherDir, "ca.pem"), filepath.Join(otherDir, "key.pem")
	if err := other.WriteFiles(otherCert, otherKey); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadCA(tc.certFile, otherKey); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	b, _ := pem.Decode(keyPEM)
	k, _ := x509.ParsePKCS8PrivateKey(b.Bytes)
	sec1, _ := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	sec1File := filepath.Join(otherDir, "sec1.pem")
	os.WriteFile(sec1File, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600)
	if _, err := identity.LoadCA(tc.certFile, sec1File); err != nil {
		t.Errorf("SEC 1 key: %v", err)
	}
	if _, err := identity.LoadCA(tc.keyFile, tc.keyFile); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("key as certificate: %v", err)
	}
	if _, err := identity.LoadCA(filepath.Join(otherDir, "missing"), tc.keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := &x509.Certificate{SerialNumber: big.NewInt(7), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	foreign.Subject.CommonName = "Example Corp Root"
	der, _ := x509.CreateCertificate(rand.Reader, foreign, foreign, foreignKey.Public(), foreignKey)
	p8, _ := x509.MarshalPKCS8PrivateKey(foreignKey)
	fc, fk := filepath.Join(otherDir, "fc.pem"), filepath.Join(otherDir, "fk.pem")
	if err := identity.WriteKeyPair(fc, fk, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadCA(fc, fk); err == nil || !strings.Contains(err.Error(), "common name") {
		t.Errorf("foreign CA: %v", err)
	}
}

func TestLoadCertPool(t *testing.T) {
	a, b := newTestCA(t, "prod"), newTestCA(t, "prod")
	dir := t.TempDir()
	write := func(name string, parts ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(func() []string {
			var s []string
			for _, x := range parts {
				s = append(s, string(x))
			}
			return s
		}(), "")), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := write("bundle.pem", []byte("comment line\n"), a.CertPEM(), b.CertPEM())
	pool, err := identity.LoadCertPool(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range []*testCA{a, b} {
		leaf := parsePEM(t, func() []byte {
			c, _, err := ca.Issue(identity.Identity{Cluster: "prod", Name: "x", Role: identity.RoleAgent, Region: "FR"}, identity.IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("bundle does not hold both CAs: %v", err)
		}
	}

	leafPEM, leafKey, err := a.Issue(identity.Identity{Cluster: "prod", Name: "x", Role: identity.RoleAgent, Region: "FR"}, identity.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path, want string
	}{
		"empty":       {write("empty.pem"), "no PEM certificate"},
		"key":         {write("key.pem", leafKey), "private key"},
		"CA and key":  {write("cakey.pem", a.CertPEM(), leafKey), "private key"},
		"leaf":        {write("leaf.pem", leafPEM), "not a CA"},
		"CA and leaf": {write("calleaf.pem", a.CertPEM(), leafPEM), "certificate 2"},
		"garbage":     {write("garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), "certificate 1"},
		"missing":     {filepath.Join(dir, "nope.pem"), "no such file"},
	} {
		if _, err := identity.LoadCertPool(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: LoadCertPool = %v, want an error saying %q", name, err, tc.want)
		}
	}
}
