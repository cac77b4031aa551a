// A cluster CA for tests, certificates written to files, and TLS servers
// configured as a node's API is.

package httpapitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/custos-eu/custos/keysvc/identity"
)

// PKI is a test cluster's CA, writing certificates into a temp directory.
type PKI struct {
	CA      *identity.CA
	Cluster string
	dir     string
	caFile  string
	n       atomic.Int64
}

// NewPKI makes a CA for cluster.
func NewPKI(tb testing.TB, cluster string) *PKI {
	tb.Helper()
	ca, err := identity.NewCA(cluster, 0)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	p := &PKI{CA: ca, Cluster: cluster, dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	if err := ca.WriteFiles(p.caFile, filepath.Join(dir, "ca.key")); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Pool is a certificate pool holding the CA.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA.Certificate())
	return pool
}

// Issue issues a certificate for name with role in region and writes it;
// node certificates are valid for 127.0.0.1 and localhost and, as a node's
// key lives in its HSM, are issued from a CSR for a key held in memory
// (TLSFiles.Signer), never written.
func (p *PKI) Issue(tb testing.TB, role identity.Role, name, region string) identity.TLSFiles {
	tb.Helper()
	id := identity.Identity{Cluster: p.Cluster, Name: name, Role: role, Region: region}
	base := filepath.Join(p.dir, fmt.Sprintf("%s-%s-%d", role, name, p.n.Add(1)))
	if role == identity.RoleNode {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		csr, err := identity.NewCSR(key, id, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		certPEM, err := p.CA.IssueCSR(csr, identity.IssueOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		f := identity.TLSFiles{Cert: base + ".pem", CA: p.caFile, Signer: key}
		if err := os.WriteFile(f.Cert, certPEM, 0o644); err != nil {
			tb.Fatal(err)
		}
		return f
	}
	certPEM, keyPEM, err := p.CA.Issue(id, identity.IssueOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	f := identity.TLSFiles{Cert: base + ".pem", Key: base + ".key", CA: p.caFile}
	if err := identity.WriteKeyPair(f.Cert, f.Key, certPEM, keyPEM); err != nil {
		tb.Fatal(err)
	}
	return f
}

// ClientTLS is identity.ClientConfig(files).
func (p *PKI) ClientTLS(tb testing.TB, files identity.TLSFiles) *tls.Config {
	tb.Helper()
	c, err := identity.ClientConfig(files)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Serve starts h on 127.0.0.1 over TLS configured by identity.ServerConfig
// with a node certificate for name, as custosd serves its API. The server
// is closed when the test ends.
func (p *PKI) Serve(tb testing.TB, name, region string, h http.Handler) *httptest.Server {
	tb.Helper()
	files := p.Issue(tb, identity.RoleNode, name, region)
	cfg, err := identity.ServerConfig(files)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the tests' point
	srv.TLS = cfg
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}
