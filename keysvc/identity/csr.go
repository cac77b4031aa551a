// Certificate requests: a node whose key lives in its HSM asks for its
// certificate with a CSR, and the cluster CA issues from it.

package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
)

// ErrBadCSR means a certificate request was refused: not a PEM CSR, a
// signature that does not verify, no or several custos identities, extra
// SANs or a key other than ECDSA P-256. The error says which.
var ErrBadCSR = errors.New("identity: certificate request refused")

// NewCSR returns a PEM certificate request ("CERTIFICATE REQUEST") signed
// by key, an ECDSA P-256 signer (an HSM key, for a node), asking for id
// with the DNS names and IP addresses given, which only a node may have.
// The request carries id's URI SAN and common name id.Name, as
// [CA.IssueCSR] expects.
func NewCSR(key crypto.Signer, id Identity, dnsNames []string, ips []net.IP) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("identity: new CSR: %w", err)
	}
	if id.Role != RoleNode && (len(dnsNames) > 0 || len(ips) > 0) {
		return nil, fmt.Errorf("identity: new CSR %s: only node certificates carry DNS names or IP addresses", id)
	}
	if _, err := p256(key.Public()); err != nil {
		return nil, fmt.Errorf("identity: new CSR %s: %w", id, err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: id.Name},
		URIs:        []*url.URL{id.URI()},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("identity: new CSR %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// IssueCSR issues a certificate for the key and identity of a PEM
// certificate request, as [CA.Issue] would for that identity but without
// making a key: the requester keeps its own (a node's, in its HSM).
//
// The request's signature must verify; it must carry exactly one custos
// URI SAN, a valid identity of the CA's cluster ([ErrWrongCluster]
// otherwise), no other URI or e-mail SAN, and an ECDSA P-256 key. The
// certificate carries the DNS names and IP addresses the request asks for,
// unless opts names some, which then replace them; only node certificates
// may have any. The request's subject is not copied. Refusals of the
// request itself match [ErrBadCSR].
func (ca *CA) IssueCSR(csrPEM []byte, opts IssueOptions) (certPEM []byte, err error) {
	req, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if len(opts.DNSNames) == 0 && len(opts.IPAddresses) == 0 {
		opts.DNSNames, opts.IPAddresses = req.DNSNames, req.IPAddresses
	}
	return ca.issue(req.Identity, req.PublicKey, opts)
}

// CSR is what a certificate request asks for, once [ParseCSR] has checked it.
type CSR struct {
	Identity    Identity
	PublicKey   *ecdsa.PublicKey
	DNSNames    []string
	IPAddresses []net.IP
}

// ParseCSR reads a PEM certificate request and checks it as [CA.IssueCSR]
// does: its signature verifies, it carries exactly one custos URI SAN and
// a valid identity, no other URI or e-mail SAN, and an ECDSA P-256 key.
// Refusals match [ErrBadCSR].
func ParseCSR(csrPEM []byte) (*CSR, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST block", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify: %v", ErrBadCSR, err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].Scheme != Scheme {
		return nil, fmt.Errorf("%w: want exactly one URI SAN, the identity %s; it has %d", ErrBadCSR, grammar, len(csr.URIs))
	}
	if len(csr.EmailAddresses) > 0 {
		return nil, fmt.Errorf("%w: e-mail SANs are not issued", ErrBadCSR)
	}
	id, err := ParseURI(csr.URIs[0].String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	pub, err := p256(csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadCSR, id, err)
	}
	return &CSR{Identity: id, PublicKey: pub, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses}, nil
}

// p256 returns pub if it is an ECDSA P-256 public key.
func p256(pub crypto.PublicKey) (*ecdsa.PublicKey, error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("key is %T, want ECDSA P-256", pub)
	}
	return ec, nil
}
