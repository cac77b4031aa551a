package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/identity/identitytest"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/nodetls"
)

// nodeConfig is a one-node bootstrap configuration on tok, written to dir.
// startOneNode starts a bootstrapped single node on a SoftHSM token, with
// configure's changes to its config; it is stopped (its log shown when the
// test failed) at the end of the test.
func startOneNode(t *testing.T, configure func(*nodecfg.Config)) (*node, *nodecfg.Config, *httpapitest.PKI) {
	t.Helper()
	tokens := hsmtest.SoftHSM(t, "n1")
	pki := httpapitest.NewPKI(t, "test")
	root := t.TempDir()
	caFile := writeFile(t, filepath.Join(root, "ca.pem"), pki.CA.CertPEM())
	cfgPath, cfg := nodeConfig(t, filepath.Join(root, "n1"), caFile, tokens[0])
	configure(cfg)
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	certify(t, pki.CA, cfgPath, cfg.TLS.Cert)
	n := &node{id: "n1", cfgPath: cfgPath, api: "https://" + cfg.API.Listen}
	n.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", n.log.String())
		}
		n.stop(t)
	})
	return n, cfg, pki
}

func nodeConfig(t *testing.T, dir, caFile string, tok pkcs11.Config) (string, *nodecfg.Config) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := &nodecfg.Config{
		NodeID: "n1", Region: "DE", Cluster: "test", DataDir: filepath.Join(dir, "data"),
		Bootstrap: true, AllowedRegions: []string{"DE"},
		API:  nodecfg.APIListener{Listen: freeAddr(t)},
		Raft: nodecfg.RaftListener{Listen: freeAddr(t)},
		HSM:  nodecfg.HSM{Module: tok.Module, TokenLabel: tok.TokenLabel, PINFile: tok.PINFile},
		TLS:  nodecfg.TLS{Cert: filepath.Join(dir, "cert.pem"), CA: caFile},
		Log:  nodecfg.Log{Level: "debug", Format: "json"},
	}
	p := filepath.Join(dir, "node.toml")
	if err := cfg.Write(p); err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

func parseCSR(t *testing.T, csrPEM []byte) *x509.CertificateRequest {
	t.Helper()
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("custosd -csr printed no PEM certificate request:\n%s", csrPEM)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	return csr
}

// custosd -csr makes the node's TLS key in its HSM once, and asks for the
// node's identity and the names of its advertise addresses.
func TestCSR(t *testing.T) {
	tok := hsmtest.SoftHSM(t, "csr")[0]
	dir := t.TempDir()
	cfgPath, cfg := nodeConfig(t, dir, filepath.Join(dir, "ca.pem"), tok)
	cfg.API.Advertise = "node-1.example.eu:8200"
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	first, second := parseCSR(t, csrOf(t, cfgPath)), parseCSR(t, csrOf(t, cfgPath))
	if !first.PublicKey.(*ecdsa.PublicKey).Equal(second.PublicKey) {
		t.Fatal("a second custosd -csr made another key")
	}
	want := identity.Identity{Cluster: "test", Name: "n1", Role: identity.RoleNode, Region: "DE"}
	if len(first.URIs) != 1 || first.URIs[0].String() != want.String() {
		t.Errorf("URIs %v, want %s", first.URIs, want)
	}
	if !slices.Equal(first.DNSNames, []string{"node-1.example.eu", "localhost"}) ||
		len(first.IPAddresses) != 1 || !first.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("names %v %v, want node-1.example.eu, localhost and 127.0.0.1", first.DNSNames, first.IPAddresses)
	}
	// The key is the token's TLS key, and nothing was written: no data, no key file.
	h, err := pkcs11.Open(tok)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	s, err := h.Signer(nodetls.LabelTLS)
	if err != nil || !s.Public().(*ecdsa.PublicKey).Equal(first.PublicKey) {
		t.Fatalf("the CSR's key is not the token's %s: %v", nodetls.LabelTLS, err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("custosd -csr created the data directory: %v", err)
	}
	noPrivateKeys(t, dir)
}

// noPrivateKeys fails if any file under dir holds a PEM private key.
func noPrivateKeys(t *testing.T, dir string) {
	t.Helper()
	found, err := identitytest.PrivateKeyFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s holds a private key", f)
	}
}

// A copy of a node's disk (data directory, configuration, certificate) is
// not the node: without its HSM the copy does not start, and no key an
// attacker can make completes a TLS handshake with the stolen certificate,
// neither as a client of the node's API and raft ports nor as a server.
func TestStolenNodeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon")
	}
	tokens := hsmtest.SoftHSM(t, "victim", "thief")
	pki := httpapitest.NewPKI(t, "test")
	root := t.TempDir()
	caFile := writeFile(t, filepath.Join(root, "ca.pem"), pki.CA.CertPEM())
	victimCfg, cfg := nodeConfig(t, filepath.Join(root, "victim"), caFile, tokens[0])
	certify(t, pki.CA, victimCfg, cfg.TLS.Cert)
	victim := &node{id: "n1", cfgPath: victimCfg, api: "https://" + cfg.API.Listen}
	victim.start(t)
	defer func() {
		if t.Failed() {
			t.Logf("victim log:\n%s", victim.log.String())
		}
		victim.stop(t)
	}()
	ops, err := client.New(client.Config{
		Endpoints: []string{victim.api},
		TLSFiles:  pki.Issue(t, identity.RoleOperator, "ops", "DE"), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	waitFor(t, 60*time.Second, func() error { _, err := ops.Canary(context.Background()); return err })
	noPrivateKeys(t, filepath.Dir(victimCfg))

	// The thief copies the whole node directory, state included.
	thiefDir := filepath.Join(root, "thief")
	if err := os.CopyFS(thiefDir, os.DirFS(filepath.Dir(victimCfg))); err != nil {
		t.Fatal(err)
	}
	thiefCfgPath, thiefCfg := nodeConfig(t, thiefDir, caFile, tokens[1])
	startThief := func() string {
		t.Helper()
		var stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if code := run(ctx, []string{"-config", thiefCfgPath}, io.Discard, &stderr); code != 2 {
			t.Fatalf("the copied node ran (exit %d):\n%s", code, stderr.String())
		}
		return stderr.String()
	}
	// With a fresh token: no TLS key.
	if out := startThief(); !strings.Contains(out, "holds no node TLS key") || !strings.Contains(out, "-csr") {
		t.Errorf("copy with an empty token:\n%s", out)
	}
	// With a key the thief made in its token: not the certificate's.
	csrOf(t, thiefCfgPath)
	if out := startThief(); !strings.Contains(out, "certificate issued for another key") {
		t.Errorf("copy with the thief's own HSM key:\n%s", out)
	}
	// Without a token at all.
	thiefCfg.HSM.TokenLabel = "no-such-token"
	if err := thiefCfg.Write(thiefCfgPath); err != nil {
		t.Fatal(err)
	}
	if out := startThief(); !strings.Contains(out, "no-such-token") {
		t.Errorf("copy without a token:\n%s", out)
	}

	// The stolen certificate with any key the thief can make.
	certPEM, err := os.ReadFile(filepath.Join(thiefDir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	thiefKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stolen := tls.Certificate{Certificate: [][]byte{b.Bytes}, PrivateKey: thiefKey, Leaf: leaf}
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA.Certificate())
	for name, port := range map[string]string{"API": cfg.API.Listen, "raft": cfg.Raft.Listen} {
		err := dialAs(port, stolen, pool)
		if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
			t.Errorf("%s port: the stolen certificate with another key: %v, want a refused handshake", name, err)
		}
	}
	// The node saw why: the handshake signature is not the certificate's key.
	// (It logs after the alert has gone out, so the log may lag a little.)
	for _, want := range []string{
		`"http: TLS handshake error from 127.0.0.1:`, `"raft: refused connection"`,
	} {
		waitFor(t, 5*time.Second, func() error {
			if !slices.ContainsFunc(strings.Split(victim.log.String(), "\n"), func(l string) bool {
				return strings.Contains(l, want) && strings.Contains(l, "invalid signature by the client certificate")
			}) {
				return fmt.Errorf("the node did not log %s with an invalid client signature", want)
			}
			return nil
		})
	}
	// The control: the same dial with a certificate and its own key gets in.
	opsTLS := pki.ClientTLS(t, pki.Issue(t, identity.RoleOperator, "ops2", "DE"))
	if err := dialAs(cfg.API.Listen, opsTLS.Certificates[0], pool); err != nil {
		t.Fatalf("API port, a valid client: %v", err)
	}

	// Posing as the node to its clients fails as well.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{stolen}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	fake := &url.URL{Scheme: "https", Host: ln.Addr().String()}
	if _, err := ops.NodeHealth(context.Background(), fake.String()); err == nil ||
		!strings.Contains(err.Error(), "invalid signature by the server certificate") {
		t.Errorf("a client talked to the thief posing as n1: %v", err)
	}
}

// dialAs makes a TLS 1.3 connection to addr with cert and, since in TLS 1.3
// a refused client certificate shows only on the first read, sends an HTTP
// request and reads the first response byte. It returns nil when the server
// answered: the handshake was accepted.
func dialAs(addr string, cert tls.Certificate, roots *x509.CertPool) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: roots,
		ServerName: "127.0.0.1", NextProtos: []string{"custos-raft/1", "http/1.1"},
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /v1/health HTTP/1.1\r\nHost: n1\r\n\r\n"); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}
