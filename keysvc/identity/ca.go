// The development and test CA: make one, issue from it, keep it on disk.

package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Default lifetimes, used when a validity is zero.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
)

// backdate is how far before now a certificate becomes valid by default, so
// that a peer whose clock is a little behind accepts it.
const backdate = 5 * time.Minute

// CA is a cluster certificate authority: an ECDSA P-256 key and its
// self-signed certificate. It is safe for concurrent use.
type CA struct {
	cluster string
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// NewCA makes a CA for cluster, valid from a few minutes ago for validity
// (zero means [DefaultCAValidity]). Its certificate's common name is
// "custos <cluster> CA", and it signs leaf certificates only (MaxPathLen 0).
func NewCA(cluster string, validity time.Duration) (*CA, error) {
	if err := checkLabel("cluster", cluster); err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	if validity < 0 {
		return nil, fmt.Errorf("identity: new CA: negative validity %v", validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	return NewCAWithKey(cluster, key, validity)
}

// NewCAWithKey is [NewCA] with a key of the caller's: an ECDSA P-256
// signer, which may live in an HSM token.
func NewCAWithKey(cluster string, key crypto.Signer, validity time.Duration) (*CA, error) {
	if err := checkLabel("cluster", cluster); err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	if validity < 0 {
		return nil, fmt.Errorf("identity: new CA: negative validity %v", validity)
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if _, err := p256(key.Public()); err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName(cluster)},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	return newCA(der, key)
}

func newCA(der []byte, key crypto.Signer) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cluster, ok := strings.CutPrefix(cert.Subject.CommonName, "custos ")
	cluster, ok2 := strings.CutSuffix(cluster, " CA")
	if !ok || !ok2 || checkLabel("cluster", cluster) != nil {
		return nil, fmt.Errorf("CA common name %q is not %q", cert.Subject.CommonName, caCommonName("<cluster>"))
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, errors.New("certificate is not a CA")
	}
	return &CA{
		cluster: cluster,
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
	}, nil
}

func caCommonName(cluster string) string { return "custos " + cluster + " CA" }

// Cluster returns the name of the cluster the CA issues for.
func (ca *CA) Cluster() string { return ca.cluster }

// Certificate returns the CA certificate. Callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM: the content of a CA file.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// IssueOptions are the optional parts of a leaf certificate.
type IssueOptions struct {
	// DNSNames and IPAddresses are the names a node serves under; a node
	// reached on 127.0.0.1 wants IP 127.0.0.1 and DNS "localhost". Only node
	// certificates may have them.
	DNSNames    []string
	IPAddresses []net.IP
	// Validity is the lifetime, zero meaning [DefaultLeafValidity]. It is
	// cut short to end with the CA's.
	Validity time.Duration
	// NotBefore is when the certificate becomes valid; zero means a few
	// minutes ago.
	NotBefore time.Time
}

// Issue makes a key pair for id and a certificate for it signed by the CA,
// and returns both in PEM (the key as unencrypted PKCS #8, "PRIVATE KEY").
// A node certificate is for both TLS server and client authentication,
// every other role's for client authentication only. The certificate
// carries id's URI SAN, the names in opts, a random 128-bit serial and an
// ECDSA P-256 key. id must be valid and in the CA's cluster.
//
// Nodes keep their key in their HSM: issue their certificates with
// [CA.IssueCSR] instead.
func (ca *CA) Issue(id Identity, opts IssueOptions) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	certPEM, err = ca.issue(id, &key.PublicKey, opts)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// issue signs a certificate for id and pub, an ECDSA P-256 key: the one
// issuing path of [CA.Issue] and [CA.IssueCSR].
func (ca *CA) issue(id Identity, pub *ecdsa.PublicKey, opts IssueOptions) (certPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("identity: issue: %w", err)
	}
	if id.Cluster != ca.cluster {
		return nil, fmt.Errorf("identity: issue %s: %w: this CA is for cluster %q", id, ErrWrongCluster, ca.cluster)
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("identity: issue %s: key is not ECDSA P-256", id)
	}
	if opts.Validity < 0 {
		return nil, fmt.Errorf("identity: issue %s: negative validity %v", id, opts.Validity)
	}
	if id.Role != RoleNode && (len(opts.DNSNames) > 0 || len(opts.IPAddresses) > 0) {
		return nil, fmt.Errorf("identity: issue %s: only node certificates carry DNS names or IP addresses", id)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = DefaultLeafValidity
	}
	notBefore := opts.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-backdate)
	}
	notAfter := notBefore.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("identity: issue %s: the CA expires at %v, before the certificate would start", id, ca.cert.NotAfter)
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if id.Role == RoleNode {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
		URIs:         []*url.URL{id.URI()},
		DNSNames:     opts.DNSNames,
		IPAddresses:  opts.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// newSerial returns a random positive serial number of at most 128 bits.
func newSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// WriteFiles writes the CA certificate and key (unencrypted PKCS #8) to
// two new files, the key with mode 0600. See [WriteKeyPair].
func (ca *CA) WriteFiles(certFile, keyFile string) error {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("identity: write CA: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return WriteKeyPair(certFile, keyFile, ca.certPEM, keyPEM)
}

// WriteKeyPair writes a certificate (mode 0644) and its key (mode 0600) in
// PEM, as [CA.Issue] returns them. It never overwrites: if either file
// exists it leaves both as they were and the error matches [os.ErrExist],
// so a CA or node key cannot be lost by running a setup twice.
func WriteKeyPair(certFile, keyFile string, certPEM, keyPEM []byte) error {
	if err := writeNew(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certFile, certPEM, 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	return nil
}

// writeNew creates name with perm, failing if it exists, and removes it
// again if writing fails.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("identity: write %s: %w", name, err)
	}
	return nil
}

// LoadCA reads a CA written by [CA.WriteFiles]. The key may be PKCS #8 or
// SEC 1 ("EC PRIVATE KEY") and must match the certificate, whose common
// name must be "custos <cluster> CA".
func LoadCA(certFile, keyFile string) (*CA, error) {
	certs, err := readCertificates(certFile)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("identity: load CA: %s holds %d certificates, want one", certFile, len(certs))
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("identity: load CA: key %s does not match certificate %s", keyFile, certFile)
	}
	ca, err := newCA(certs[0].Raw, key)
	if err != nil {
		return nil, fmt.Errorf("identity: load CA %s: %w", certFile, err)
	}
	return ca, nil
}

// LoadCertPool reads a CA file: one or more PEM CA certificates. It is an
// error if the file holds no certificate, a private key, or a certificate
// that is not a CA (a leaf given by mistake).
func LoadCertPool(path string) (*x509.CertPool, error) {
	certs, err := readCertificates(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for i, c := range certs {
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("identity: CA file %s: certificate %d (%s) is not a CA", path, i+1, c.Subject)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// readCertificates reads every CERTIFICATE block of a PEM file, refusing
// private keys and files with none.
func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("identity: %s: certificate %d: %w", path, len(certs)+1, err)
			}
			certs = append(certs, c)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("identity: %s holds a private key where certificates were expected", path)
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("identity: %s holds no PEM certificate", path)
	}
	return certs, nil
}

// readKey reads a PEM ECDSA key, PKCS #8 or SEC 1.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("identity: %s holds no PEM key", path)
	}
	var key any
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("identity: %s holds a %q block, want PRIVATE KEY", path, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity: %s: CA key is %T, want ECDSA", path, key)
	}
	return ec, nil
}
