package softhsmtests

// Node identity in the HSM, on a cluster of real processes: no node key is
// a file, and a copy of a node's disk is not the node.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/softhsm"
	"github.com/custos-eu/custos/keysvc/identity/identitytest"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/nodetls"
)

// privateKeyBlocks lists every file under dir holding a PEM private key.
func privateKeyBlocks(t *testing.T, dir string) []string {
	t.Helper()
	found, err := identitytest.PrivateKeyFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func readLeaf(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s holds no PEM", certFile)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// After a dev cluster is laid out and up, no node directory holds a private
// key: each node's certificate is for the TLS key in its own token, and the
// nodes reached each other with it. Then a copy of node-1's data directory,
// configuration and certificate, with a fresh token, does not start, and the
// stolen certificate with a key of the thief's is refused on every port.
func TestNodeIdentityInHSM(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	if _, err := operator(t, c).Canary(bounded(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if found := privateKeyBlocks(t, c.NodeDir(n.ID)); len(found) > 0 {
			t.Errorf("%s's directory holds private keys: %v", n.ID, found)
		}
	}

	// The thief's copy: data, configuration, certificate; its own SoftHSM
	// with a token of the same label, since it has not the node's HSM.
	victim := c.Node("node-1")
	thief := t.TempDir()
	if err := os.CopyFS(filepath.Join(thief, "data"), os.DirFS(filepath.Join(c.NodeDir(victim.ID), "data"))); err != nil {
		t.Fatal(err)
	}
	cfg, err := nodecfg.Load(c.ConfigPath(victim.ID))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(cfg.TLS.Cert)
	if err != nil {
		t.Fatal(err)
	}
	env, err := softhsm.Setup(filepath.Join(thief, "softhsm"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := env.InitToken(cfg.HSM.TokenLabel)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(thief, "data")
	cfg.TLS.Cert = filepath.Join(thief, "cert.pem")
	cfg.HSM = nodecfg.HSM{Module: tok.Module, TokenLabel: tok.TokenLabel, PINFile: tok.PINFile, SoftHSMConf: env.ConfPath}
	cfg.API.Listen, cfg.API.Advertise, cfg.Raft.Listen, cfg.Raft.Advertise = "127.0.0.1:0", "", "127.0.0.1:0", ""
	if err := os.WriteFile(cfg.TLS.Cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(thief, "node.toml")
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	custosd := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, custosdBinary(t), append([]string{"-config", cfgPath}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	if code, out := custosd(); code != 2 || !strings.Contains(out, "holds no node TLS key") {
		t.Errorf("the copy with a fresh token: exit %d:\n%s", code, out)
	}
	if code, out := custosd("-csr"); code != 0 {
		t.Fatalf("custosd -csr on the thief's token: exit %d:\n%s", code, out)
	}
	if code, out := custosd(); code != 2 || !strings.Contains(out, "certificate issued for another key") {
		t.Errorf("the copy with a key of the thief's token: exit %d:\n%s", code, out)
	}

	leaf := readLeaf(t, cfg.TLS.Cert)
	thiefKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readLeaf(t, cfg.TLS.CA))
	for _, n := range c.Nodes {
		for _, port := range []int{n.APIPort, n.RaftPort} {
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
				Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: thiefKey, Leaf: leaf}},
				RootCAs:      pool, MinVersion: tls.VersionTLS13, ServerName: "127.0.0.1",
				NextProtos: []string{"custos-raft/1", "http/1.1"},
			})
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
				t.Errorf("%s port %d, the stolen certificate with another key: %v; want a refused handshake", n.ID, port, err)
			}
		}
	}

	// The certificates are for the keys in the nodes' own tokens.
	if err := c.StopAll(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		cfg, err := nodecfg.Load(c.ConfigPath(n.ID))
		if err != nil {
			t.Fatal(err)
		}
		leaf := readLeaf(t, cfg.TLS.Cert)
		withToken(t, c, n.ID, func(tok hsm.Token) {
			s, err := tok.Signer(nodetls.LabelTLS)
			if err != nil {
				t.Fatalf("%s: %v", n.ID, err)
			}
			if !s.Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
				t.Errorf("%s's certificate is not for its token's TLS key", n.ID)
			}
		})
	}
}
