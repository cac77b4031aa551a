// custos pki: the CA, node and client issuing, and the refusals an attacker
// would try, through the CLI's own entry point.

package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/identity"
)

const pkiPass = "pki test passphrase"

// pkiSetup lowers the CA key's scrypt cost and writes a passphrase file.
func pkiSetup(t *testing.T) (dir, passFile string) {
	t.Helper()
	pkiWorkFactor = 10
	t.Cleanup(func() { pkiWorkFactor = 0 })
	dir = t.TempDir()
	passFile = filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte(pkiPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, passFile
}

// pkiCA makes a file-key CA for cluster in DIR/name.
func pkiCA(t *testing.T, dir, passFile, cluster, name string) string {
	t.Helper()
	caDir := filepath.Join(dir, name)
	if code, out, errOut := runCLI("pki", "ca", "init", "--cluster", cluster, "--out", caDir, "--passphrase-file", passFile); code != 0 {
		t.Fatalf("ca init: exit %d\n%s%s", code, out, errOut)
	}
	return caDir
}

func wantExit(t *testing.T, want int, errPart string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(args...)
	if code != want || !strings.Contains(errOut, errPart) {
		t.Fatalf("custos %s: exit %d, stderr %q; want exit %d with %q", strings.Join(args, " "), code, errOut, want, errPart)
	}
	return out
}

// nodeCSR makes a CSR for a node identity with a fresh software key (the
// node's HSM key in production) and writes it to a file.
func nodeCSR(t *testing.T, dir string, id identity.Identity, key crypto.Signer) string {
	t.Helper()
	csr, err := identity.NewCSR(key, id, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, id.Name+"-"+string(id.Role)+".csr")
	if err := os.WriteFile(f, csr, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// rawCSR makes a CSR with any URI, which identity.NewCSR would refuse.
func rawCSR(t *testing.T, dir, name, uri string, dns []string, key crypto.Signer) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, URIs: []*url.URL{u}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name+".csr")
	os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644)
	return f
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPKICAInitFileKey(t *testing.T) {
	dir, pass := pkiSetup(t)
	ca := pkiCA(t, dir, pass, "prod", "ca")
	fi, err := os.Stat(filepath.Join(ca, "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if fi, _ := os.Stat(ca); fi.Mode().Perm() != 0o700 {
		t.Fatalf("CA directory mode %v, want 0700", fi.Mode().Perm())
	}
	sealed, _ := os.ReadFile(filepath.Join(ca, "ca.key"))
	if strings.Contains(string(sealed), "PRIVATE KEY") || !strings.HasPrefix(string(sealed), "age-encryption.org/v1") {
		t.Fatal("ca.key is not an age-encrypted file")
	}
	// A second init never overwrites the CA.
	before, _ := os.ReadFile(filepath.Join(ca, "ca.pem"))
	wantExit(t, 1, "refusing to overwrite", "pki", "ca", "init", "--cluster", "prod", "--out", ca, "--passphrase-file", pass)
	after, _ := os.ReadFile(filepath.Join(ca, "ca.pem"))
	if string(before) != string(after) {
		t.Fatal("ca.pem changed")
	}
	// A wrong passphrase opens nothing.
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not the passphrase at all"), 0o600)
	wantExit(t, 1, "wrong passphrase", "pki", "issue", "client", "--role", "agent", "--name", "a", "--region", "FR",
		"--ca", ca, "--out", filepath.Join(dir, "c"), "--passphrase-file", bad)
	// Short passphrases and bad cluster names are refused before anything is written.
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("short"), 0o600)
	wantExit(t, 1, "shorter than", "pki", "ca", "init", "--cluster", "prod", "--out", filepath.Join(dir, "ca2"), "--passphrase-file", short)
	wantExit(t, 2, "cluster", "pki", "ca", "init", "--cluster", "Prod!", "--out", filepath.Join(dir, "ca3"), "--passphrase-file", pass)
	if _, err := os.Stat(filepath.Join(dir, "ca2")); err == nil {
		t.Fatal("a refused init made its directory")
	}
	out := wantExit(t, 0, "", "pki", "inspect", filepath.Join(ca, "ca.pem"), "--format", "json")
	var info certInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info.Kind != "ca" || info.Cluster != "prod" || info.DaysLeft < 5*365-2 || info.DaysLeft > 5*365 {
		t.Fatalf("CA inspect: %+v; want a prod CA for about 5 years", info)
	}
}

func TestPKIUsageErrors(t *testing.T) {
	dir, pass := pkiSetup(t)
	ca := pkiCA(t, dir, pass, "prod", "ca")
	for _, args := range [][]string{
		{"pki"},
		{"pki", "nope"},
		{"pki", "ca", "init", "--out", dir},
		{"pki", "issue", "node", "--ca", ca},
		{"pki", "issue", "node", "--csr", "x", "--ca", ca, "--days", "0"},
		{"pki", "issue", "client", "--role", "node", "--name", "n", "--region", "FR", "--ca", ca, "--out", dir},
		{"pki", "issue", "client", "--role", "admin", "--name", "n", "--region", "FR", "--ca", ca, "--out", dir},
		{"pki", "issue", "client", "--role", "agent", "--name", "n", "--region", "US", "--ca", ca, "--out", dir},
		{"pki", "issue", "client", "--role", "agent", "--name", "n", "--region", "FR", "--ca", ca},
		{"pki", "inspect"},
		{"pki", "inspect", "x", "--format", "xml"},
	} {
		err := runPKICmd(t.Context(), new(strings.Builder), args[1:])
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("custos %s: %v; want a usage error (exit 2)", strings.Join(args, " "), err)
		}
	}
	if err := runPKICmd(t.Context(), new(strings.Builder), []string{"help"}); err != nil {
		t.Fatalf("pki help: %v", err)
	}
}

// TestPKINodeCertificateWorksInTLS: a node certificate issued by pki from a
// CSR signed on a SoftHSM token, and an agent certificate issued with --out,
// complete a real mTLS handshake with the configurations the node uses.
func TestPKINodeCertificateWorksInTLS(t *testing.T) {
	dir, pass := pkiSetup(t)
	ca := pkiCA(t, dir, pass, "prod", "ca")
	tok := hsmtest.OpenSoftHSM(t, "pki-node")
	key, err := tok.GenerateSigner("custos:node:tls")
	if err != nil {
		t.Fatal(err)
	}
	csr := nodeCSR(t, dir, identity.Identity{Cluster: "prod", Role: identity.RoleNode, Name: "node-1", Region: "FR"}, key)
	nodeCert := filepath.Join(dir, "node-1.pem")
	wantExit(t, 0, "", "pki", "issue", "node", "--csr", csr, "--ca", ca, "--out", nodeCert, "--passphrase-file", pass)
	wantExit(t, 1, "refusing to overwrite", "pki", "issue", "node", "--csr", csr, "--ca", ca, "--out", nodeCert, "--passphrase-file", pass)
	clients := filepath.Join(dir, "clients")
	wantExit(t, 0, "", "pki", "issue", "client", "--role", "agent", "--name", "payroll", "--region", "DE", "--ca", ca, "--out", clients, "--passphrase-file", pass)

	// Lifetimes and identities as documented.
	out := wantExit(t, 0, "", "pki", "inspect", nodeCert, "--ca", filepath.Join(ca, "ca.pem"), "--format", "json")
	var info certInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info.Kind != "node" || info.Identity != "custos://prod/node/node-1?region=FR" || info.DaysLeft != 364 ||
		info.Verified == nil || !*info.Verified || strings.Join(info.DNSNames, ",") != "localhost" {
		t.Fatalf("node inspect: %+v", info)
	}
	text := wantExit(t, 0, "", "pki", "inspect", filepath.Join(clients, "agent-payroll.pem"))
	for _, want := range []string{"custos://prod/agent/payroll?region=DE", "role         agent", "region       DE", "days left    29", "issuer       custos prod CA"} {
		if !strings.Contains(text, want) {
			t.Fatalf("client inspect lacks %q:\n%s", want, text)
		}
	}
	if fi, err := os.Stat(filepath.Join(clients, "agent-payroll.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client key: %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	keyBefore, _ := os.ReadFile(filepath.Join(clients, "agent-payroll.key"))
	wantExit(t, 1, "refusing to overwrite", "pki", "issue", "client", "--role", "agent", "--name", "payroll", "--region", "DE", "--ca", ca, "--out", clients, "--passphrase-file", pass)
	if keyAfter, _ := os.ReadFile(filepath.Join(clients, "agent-payroll.key")); string(keyAfter) != string(keyBefore) {
		t.Fatal("an existing client key was overwritten")
	}

	caFile := filepath.Join(ca, "ca.pem")
	server, err := identity.ServerConfig(identity.TLSFiles{Cert: nodeCert, CA: caFile, Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := identity.ClientConfig(identity.TLSFiles{Cert: filepath.Join(clients, "agent-payroll.pem"), Key: filepath.Join(clients, "agent-payroll.key"), CA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			if err == nil {
				var id identity.Identity
				if id, err = identity.FromCertificate(c.(*tls.Conn).ConnectionState().PeerCertificates[0]); err == nil && id.Name != "payroll" {
					err = errors.New("server saw " + id.String())
				}
			}
			c.Close()
		}
		peer <- err
	}()
	cl.ServerName = "localhost"
	c, err := tls.Dial("tcp", ln.Addr().String(), cl)
	if err != nil {
		t.Fatalf("client handshake with the pki-issued node certificate: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0]; identity.Fingerprint(got) != info.Fingerprint {
		t.Fatal("the client saw another certificate")
	}
	c.Close()
	if err := <-peer; err != nil {
		t.Fatalf("server side: %v", err)
	}
}

// TestPKIRefusesBadRequests: what an attacker would hand the CA operator.
func TestPKIRefusesBadRequests(t *testing.T) {
	dir, pass := pkiSetup(t)
	ca := pkiCA(t, dir, pass, "prod", "ca")
	key := newKey(t)
	issue := func(csr string) []string {
		return []string{"pki", "issue", "node", "--csr", csr, "--ca", ca, "--passphrase-file", pass}
	}
	good := nodeCSR(t, dir, identity.Identity{Cluster: "prod", Role: identity.RoleNode, Name: "node-1", Region: "FR"}, key)
	if out := wantExit(t, 0, "", issue(good)...); !strings.Contains(out, "BEGIN CERTIFICATE") {
		t.Fatal("issue node without --out printed no certificate")
	}

	// A signature that does not verify: flip a byte of the signature.
	b, _ := os.ReadFile(good)
	blk, _ := pem.Decode(b)
	blk.Bytes[len(blk.Bytes)-3] ^= 0x40
	tampered := filepath.Join(dir, "tampered.csr")
	os.WriteFile(tampered, pem.EncodeToMemory(blk), 0o644)
	wantExit(t, 1, "certificate request refused", issue(tampered)...)

	other := nodeCSR(t, dir, identity.Identity{Cluster: "staging", Role: identity.RoleNode, Name: "node-9", Region: "FR"}, key)
	wantExit(t, 1, `this CA is for cluster "prod": refused`, issue(other)...)

	us := rawCSR(t, dir, "us", "custos://prod/node/node-us?region=US", []string{"localhost"}, key)
	wantExit(t, 1, `region "US" is not`, issue(us)...)
	uk := rawCSR(t, dir, "uk", "custos://prod/node/node-uk?region=GB", []string{"localhost"}, key)
	wantExit(t, 1, `region "GB" is not`, issue(uk)...)

	agentCSR := filepath.Join(dir, "agent.csr")
	csr, _ := identity.NewCSR(key, identity.Identity{Cluster: "prod", Role: identity.RoleAgent, Name: "a", Region: "FR"}, nil, nil)
	os.WriteFile(agentCSR, csr, 0o644)
	wantExit(t, 1, "not a node: refused", issue(agentCSR)...)

	wild := rawCSR(t, dir, "wild", "custos://prod/node/node-w?region=FR", []string{"*.example.com"}, key)
	wantExit(t, 1, "refused", issue(wild)...)
	bare := rawCSR(t, dir, "bare", "custos://prod/node/node-b?region=FR", nil, key)
	wantExit(t, 1, "names no DNS name or IP address", issue(bare)...)
	two := rawCSR(t, dir, "spiffe", "spiffe://prod/node-1", []string{"localhost"}, key)
	wantExit(t, 1, "certificate request refused", issue(two)...)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	wantExit(t, 1, "want ECDSA P-256", issue(rawCSR(t, dir, "p384", "custos://prod/node/node-p?region=FR", []string{"localhost"}, p384))...)
	wantExit(t, 1, "certificate request refused", issue(rawCSR(t, dir, "upper", "custos://prod/node/Node-1?region=FR", []string{"localhost"}, key))...)
	wantExit(t, 1, "certificate request refused", issue(rawCSR(t, dir, "pct", "custos://prod/node/node%2D1?region=FR", []string{"localhost"}, key))...)
	wantExit(t, 1, "certificate request refused", issue(rawCSR(t, dir, "extra", "custos://prod/node/node-1?region=FR&role=operator", []string{"localhost"}, key))...)
	notCSR := filepath.Join(dir, "cert-not-csr.pem")
	os.WriteFile(notCSR, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
	wantExit(t, 1, "no PEM CERTIFICATE REQUEST", issue(notCSR)...)

	// Client certificates from a request: the identity must be the flags'.
	client := func(csr, role, name string) []string {
		return []string{"pki", "issue", "client", "--role", role, "--name", name, "--region", "FR", "--ca", ca, "--csr", csr, "--passphrase-file", pass}
	}
	if out := wantExit(t, 0, "", client(agentCSR, "agent", "a")...); !strings.Contains(out, "BEGIN CERTIFICATE") {
		t.Fatal("client --csr printed no certificate")
	}
	wantExit(t, 1, "the flags say custos://prod/operator/a?region=FR: refused", client(agentCSR, "operator", "a")...)
	wantExit(t, 1, "only node certificates carry", client(good, "agent", "node-1")...) // a node's request as a client's
	withNames := rawCSR(t, dir, "agentdns", "custos://prod/agent/b?region=FR", []string{"evil.example"}, key)
	wantExit(t, 1, "only node certificates carry", client(withNames, "agent", "b")...)
}

// TestPKIRefusesBadCA: a CA that expired, and a CA directory whose key is
// another CA's.
func TestPKIRefusesBadCA(t *testing.T) {
	dir, pass := pkiSetup(t)
	key := newKey(t)
	csr := nodeCSR(t, dir, identity.Identity{Cluster: "prod", Role: identity.RoleNode, Name: "node-1", Region: "FR"}, key)

	// An expired CA, its key sealed as ca init would.
	caKey := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "custos prod CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	old, err := identity.OpenCA(certPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealCAKey(old, []byte(pkiPass))
	if err != nil {
		t.Fatal(err)
	}
	expired := filepath.Join(dir, "expired")
	os.Mkdir(expired, 0o700)
	os.WriteFile(filepath.Join(expired, "ca.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(expired, "ca.key"), sealed, 0o600)
	wantExit(t, 1, "CA cannot issue: it expired", "pki", "issue", "node", "--csr", csr, "--ca", expired, "--passphrase-file", pass)

	// A foreign CA certificate beside our key.
	ours := pkiCA(t, dir, pass, "prod", "ours")
	theirs := pkiCA(t, dir, pass, "prod", "theirs")
	mixed := filepath.Join(dir, "mixed")
	os.Mkdir(mixed, 0o700)
	b, _ := os.ReadFile(filepath.Join(theirs, "ca.pem"))
	os.WriteFile(filepath.Join(mixed, "ca.pem"), b, 0o644)
	b, _ = os.ReadFile(filepath.Join(ours, "ca.key"))
	os.WriteFile(filepath.Join(mixed, "ca.key"), b, 0o600)
	wantExit(t, 1, "key does not match the CA certificate", "pki", "issue", "node", "--csr", csr, "--ca", mixed, "--passphrase-file", pass)

	// A certificate of one CA checked against another.
	cert := filepath.Join(dir, "node.pem")
	wantExit(t, 0, "", "pki", "issue", "node", "--csr", csr, "--ca", ours, "--out", cert, "--passphrase-file", pass)
	wantExit(t, 1, "was not issued by", "pki", "inspect", cert, "--ca", filepath.Join(theirs, "ca.pem"))
}

// TestPKICAOnToken: the CA key made on a PKCS#11 token, never a file.
func TestPKICAOnToken(t *testing.T) {
	dir, pass := pkiSetup(t)
	cfg := hsmtest.SoftHSM(t, "pki-ca")[0]
	uri := "pkcs11:token=" + cfg.TokenLabel + ";object=custos-ca?module-path=" + cfg.Module + "&pin-source=file:" + cfg.PINFile
	ca := filepath.Join(dir, "ca")
	wantExit(t, 0, "", "pki", "ca", "init", "--cluster", "prod", "--out", ca, "--pkcs11-uri", uri)
	if _, err := os.Stat(filepath.Join(ca, "ca.key")); err == nil {
		t.Fatal("a token CA wrote a key file")
	}
	for _, f := range []string{"ca.pem", "ca.pkcs11-uri"} {
		b, _ := os.ReadFile(filepath.Join(ca, f))
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Fatalf("%s holds a private key", f)
		}
	}
	// The object is taken: a second CA on it is refused.
	wantExit(t, 1, "already holds a key", "pki", "ca", "init", "--cluster", "prod", "--out", filepath.Join(dir, "ca2"), "--pkcs11-uri", uri)
	csr := nodeCSR(t, dir, identity.Identity{Cluster: "prod", Role: identity.RoleNode, Name: "node-1", Region: "FR"}, newKey(t))
	cert := filepath.Join(dir, "node.pem")
	wantExit(t, 0, "", "pki", "issue", "node", "--csr", csr, "--ca", ca, "--out", cert, "--passphrase-file", pass)
	wantExit(t, 0, "", "pki", "inspect", cert, "--ca", filepath.Join(ca, "ca.pem"))
}

func TestPKIHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"pki", "--help"}, {"pki", "help"}, {"pki", "issue", "node", "-h"}, {"pki", "ca", "init", "--help"}, {"pki", "inspect", "-h"}} {
		code, out, errOut := runCLI(args...)
		if code != 0 || !strings.Contains(out, "usage") || errOut != "" {
			t.Errorf("custos %s: exit %d, stdout %q, stderr %q; want usage on stdout, exit 0", strings.Join(args, " "), code, out, errOut)
		}
	}
}
