package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/identity"
)

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCSR(t testing.TB, key crypto.Signer, id identity.Identity, opts identity.IssueOptions) []byte {
	t.Helper()
	csr, err := identity.NewCSR(key, id, opts.DNSNames, opts.IPAddresses)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// rawCSR signs any request template, as a requester that does not use NewCSR might.
func rawCSR(t testing.TB, tmpl *x509.CertificateRequest, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// writeCert writes a certificate alone, as a node holds it: no key file.
func writeCert(t testing.TB, certPEM []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(p, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A node's key never leaves its signer: its CSR gets the certificate Issue
// would make for that identity, for the signer's key, and the TLS
// configurations built from the certificate and the signer shake hands.
func TestIssueCSR(t *testing.T) {
	c := newCluster(t)
	node := identity.Identity{Cluster: "prod", Name: "node-3", Role: identity.RoleNode, Region: "NL"}
	key := newP256(t)
	certPEM, err := c.prod.IssueCSR(mustCSR(t, key, node, localhost), identity.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert := parsePEM(t, certPEM)
	if id, err := identity.FromCertificate(cert); err != nil || id != node {
		t.Fatalf("certificate identity %v, %v; want %v", id, err, node)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	// The same names, usages and subject as Issue gives a node.
	ref := parsePEM(t, mustRead(t, c.node1.Cert))
	if !slices.Equal(cert.ExtKeyUsage, ref.ExtKeyUsage) || cert.KeyUsage != ref.KeyUsage ||
		!slices.Equal(cert.DNSNames, ref.DNSNames) || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(ref.IPAddresses[0]) ||
		cert.Subject.CommonName != node.Name || cert.NotAfter.Sub(cert.NotBefore) != ref.NotAfter.Sub(ref.NotBefore) {
		t.Errorf("CSR certificate differs from an issued node certificate:\n%+v\n%+v", cert, ref)
	}

	files := identity.TLSFiles{Cert: writeCert(t, certPEM), CA: c.prod.certFile, Signer: key}
	srv := mustServer(t, files, identity.RequireRoles(identity.RoleNode), identity.RequireHybridKeyExchange())
	cli := mustClient(t, files, identity.RequireHybridKeyExchange())
	ln := listen(t)
	r := handshake(t, ln, srv, mustClient(t, c.node2))
	r.ok(t)
	if id, _ := identity.PeerIdentity(r.client); id != node {
		t.Errorf("client sees %v, want %v", id, node)
	}
	r = handshake(t, ln, mustServer(t, c.node1), cli)
	r.ok(t)
	if id, _ := identity.PeerIdentity(r.server); id != node {
		t.Errorf("server sees %v, want %v", id, node)
	}

	// Names given to IssueCSR replace the requested ones.
	certPEM, err = c.prod.IssueCSR(mustCSR(t, key, node, localhost), identity.IssueOptions{DNSNames: []string{"node-3.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if cert := parsePEM(t, certPEM); !slices.Equal(cert.DNSNames, []string{"node-3.example"}) || len(cert.IPAddresses) != 0 {
		t.Errorf("names %v %v, want only node-3.example", cert.DNSNames, cert.IPAddresses)
	}
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssueCSRRejects(t *testing.T) {
	c := newCluster(t)
	key := newP256(t)
	node := identity.Identity{Cluster: "prod", Name: "node-3", Role: identity.RoleNode, Region: "NL"}
	good := mustCSR(t, key, node, localhost)

	tampered := func() []byte {
		b, _ := pem.Decode(good)
		csr, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		// Another identity under the original signature.
		der := slices.Clone(b.Bytes)
		i := strings.Index(string(der), "node-3")
		if i < 0 || len(csr.Signature) == 0 {
			t.Fatal("no name to tamper with")
		}
		der[i+5] = '4'
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	agentURI := identity.Identity{Cluster: "prod", Name: "a", Role: identity.RoleAgent, Region: "FR"}.URI()
	for _, tc := range []struct {
		name string
		csr  []byte
		is   error
		want string
	}{
		{"not PEM", []byte("hello"), identity.ErrBadCSR, "no PEM CERTIFICATE REQUEST"},
		{"certificate, not CSR", mustRead(t, c.node1.Cert), identity.ErrBadCSR, "no PEM CERTIFICATE REQUEST"},
		{"bad signature", tampered, identity.ErrBadCSR, "signature does not verify"},
		{"wrong cluster", mustCSR(t, key, identity.Identity{Cluster: "staging", Name: "node-3", Role: identity.RoleNode, Region: "NL"}, localhost),
			identity.ErrWrongCluster, `this CA is for cluster "prod"`},
		{"no identity", rawCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "node-3"}, DNSNames: []string{"localhost"}}, key),
			identity.ErrBadCSR, "want exactly one URI SAN"},
		{"other URI scheme", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{{Scheme: "spiffe", Host: "prod", Path: "/node-3"}}}, key),
			identity.ErrBadCSR, "want exactly one URI SAN"},
		{"two identities", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{node.URI(), agentURI}}, key),
			identity.ErrBadCSR, "it has 2"},
		{"malformed identity", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{{Scheme: "custos", Host: "prod", Path: "/node/Node-3", RawQuery: "region=NL"}}}, key),
			identity.ErrBadCSR, "custos://"},
		{"e-mail SAN", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{node.URI()}, EmailAddresses: []string{"a@b.eu"}}, key),
			identity.ErrBadCSR, "e-mail"},
		{"Ed25519 key", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{node.URI()}}, ed), identity.ErrBadCSR, "want ECDSA P-256"},
		{"P-384 key", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{node.URI()}}, p384), identity.ErrBadCSR, "want ECDSA P-256"},
		{"client with names", rawCSR(t, &x509.CertificateRequest{URIs: []*url.URL{agentURI}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, key),
			nil, "only node certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := c.prod.IssueCSR(tc.csr, identity.IssueOptions{})
			if err == nil || cert != nil {
				t.Fatalf("issued for a refused CSR: %s", cert)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
	if _, err := identity.NewCSR(p384, node, nil, nil); err == nil || !strings.Contains(err.Error(), "want ECDSA P-256") {
		t.Errorf("NewCSR with a P-384 key: %v", err)
	}
	if _, err := identity.NewCSR(key, agentIdentity(), []string{"x"}, nil); err == nil || !strings.Contains(err.Error(), "only node") {
		t.Errorf("NewCSR for an agent with a DNS name: %v", err)
	}
}

func agentIdentity() identity.Identity {
	return identity.Identity{Cluster: "prod", Name: "a", Role: identity.RoleAgent, Region: "FR"}
}

// A certificate and a signer of different keys do not make a configuration:
// the certificate of another node, or one issued before the HSM key was made
// again, is refused with a clear error.
func TestSignerMismatch(t *testing.T) {
	c := newCluster(t)
	node := identity.Identity{Cluster: "prod", Name: "node-3", Role: identity.RoleNode, Region: "NL"}
	certPEM, err := c.prod.IssueCSR(mustCSR(t, newP256(t), node, localhost), identity.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := newP256(t)
	for name, f := range map[string]identity.TLSFiles{
		"CSR certificate":    {Cert: writeCert(t, certPEM), CA: c.prod.certFile, Signer: other},
		"issued certificate": {Cert: c.node1.Cert, CA: c.prod.certFile, Signer: other},
	} {
		if _, err := identity.ServerConfig(f); !errors.Is(err, identity.ErrCertificateKeyMismatch) || !strings.Contains(err.Error(), f.Cert) {
			t.Errorf("%s: server config: %v", name, err)
		}
		if _, err := identity.ClientConfig(f); !errors.Is(err, identity.ErrCertificateKeyMismatch) {
			t.Errorf("%s: client config: %v", name, err)
		}
	}
	both := identity.TLSFiles{Cert: c.node1.Cert, Key: c.node1.Key, CA: c.prod.certFile, Signer: other}
	if _, err := identity.ServerConfig(both); err == nil || !strings.Contains(err.Error(), "want one") {
		t.Errorf("key file and signer: %v", err)
	}
}

func TestTLSFilesIsZero(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, f := range []identity.TLSFiles{{Cert: "c"}, {Key: "k"}, {CA: "ca"}, {Signer: ed}} {
		if f.IsZero() {
			t.Errorf("%+v is zero", f)
		}
	}
	if !(identity.TLSFiles{}).IsZero() {
		t.Error("the zero TLSFiles is not zero")
	}
}
