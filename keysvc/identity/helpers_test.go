// Shared test helpers: CAs and key pairs on disk, a foreign-template signer,
// and a loopback TLS handshake.

package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
)

var localhost = identity.IssueOptions{DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}

// testCA is a CA on disk.
type testCA struct {
	*identity.CA
	dir, certFile, keyFile string
}

func newTestCA(t testing.TB, cluster string) *testCA {
	t.Helper()
	ca, err := identity.NewCA(cluster, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tc := &testCA{CA: ca, dir: dir, certFile: filepath.Join(dir, "ca.pem"), keyFile: filepath.Join(dir, "ca-key.pem")}
	if err := ca.WriteFiles(tc.certFile, tc.keyFile); err != nil {
		t.Fatal(err)
	}
	return tc
}

// issue issues id and writes it next to the CA; the CA file is this CA's.
func (ca *testCA) issue(t testing.TB, id identity.Identity, opts identity.IssueOptions) identity.TLSFiles {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return writePair(t, ca.certFile, certPEM, keyPEM)
}

func writePair(t testing.TB, caFile string, certPEM, keyPEM []byte) identity.TLSFiles {
	t.Helper()
	dir := t.TempDir()
	f := identity.TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: caFile}
	if err := identity.WriteKeyPair(f.Cert, f.Key, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return f
}

// signRaw signs any template with the CA's key, read back from its file,
// as a CA other than ours (a deployment's own) might.
func (ca *testCA) signRaw(t testing.TB, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	data, err := os.ReadFile(ca.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	caKey, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return signWith(t, tmpl, ca.Certificate(), caKey.(crypto.Signer))
}

// selfSigned makes a throwaway certificate from tmpl, for parser tests.
func selfSigned(t testing.TB, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fillTemplate(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fillTemplate(tmpl *x509.Certificate) {
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(1)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Minute)
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	if tmpl.Subject.CommonName == "" {
		tmpl.Subject = pkix.Name{CommonName: "test"}
	}
}

func signWith(t testing.TB, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fillTemplate(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})
}

func parsePEM(t testing.TB, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustServer(t testing.TB, f identity.TLSFiles, opts ...identity.Option) *tls.Config {
	t.Helper()
	c, err := identity.ServerConfig(f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustClient(t testing.TB, f identity.TLSFiles, opts ...identity.Option) *tls.Config {
	t.Helper()
	c, err := identity.ClientConfig(f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// result is both ends of one handshake.
type result struct {
	serverErr, clientErr error
	server, client       tls.ConnectionState
}

// ok fails the test unless both ends succeeded.
func (r result) ok(t testing.TB) {
	t.Helper()
	if r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("handshake failed: server: %v; client: %v", r.serverErr, r.clientErr)
	}
}

// refused fails the test unless both ends failed; it returns the error of
// the end that decided (side "server" or "client").
func (r result) refused(t testing.TB, side string) error {
	t.Helper()
	if r.serverErr == nil || r.clientErr == nil {
		t.Fatalf("handshake not refused on both ends: server: %v; client: %v", r.serverErr, r.clientErr)
	}
	if side == "server" {
		return r.serverErr
	}
	return r.clientErr
}

// handshake runs one TLS handshake over 127.0.0.1 and, since in TLS 1.3 a
// client learns that its certificate was refused only on its first read,
// has the server send one byte that the client must read.
func handshake(t testing.TB, ln net.Listener, srv, cli *tls.Config) result {
	t.Helper()
	var r result
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			r.serverErr = err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, srv)
		if r.serverErr = tc.Handshake(); r.serverErr == nil {
			r.server = tc.ConnectionState()
			_, r.serverErr = tc.Write([]byte{1})
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if cli.ServerName == "" {
		cli = cli.Clone()
		cli.ServerName = "localhost"
	}
	tc := tls.Client(conn, cli)
	if r.clientErr = tc.Handshake(); r.clientErr == nil {
		r.client = tc.ConnectionState()
		var b [1]byte
		_, r.clientErr = tc.Read(b[:])
	}
	conn.Close()
	<-done
	return r
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
