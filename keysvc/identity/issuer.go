// A cluster CA whose key the caller keeps (an HSM token, an encrypted
// file): open it, check it can still issue, and issue for a key that a
// request or the caller brings.

package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ErrCAUnusable means a CA cannot issue now: it has expired or is not yet
// valid.
var ErrCAUnusable = errors.New("identity: CA cannot issue")

// OpenCA returns the CA whose PEM certificate is certPEM and whose key is
// key, an ECDSA P-256 signer that may live in an HSM token. The file must
// hold exactly one certificate, a CA's named "custos <cluster> CA", for
// that key.
func OpenCA(certPEM []byte, key crypto.Signer) (*CA, error) {
	b, rest := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("identity: open CA: no PEM CERTIFICATE block")
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, errors.New("identity: open CA: more than one PEM block, want the CA certificate alone")
	}
	ca, err := newCA(b.Bytes, key)
	if err != nil {
		return nil, fmt.Errorf("identity: open CA: %w", err)
	}
	pub, ok := ca.cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("identity: open CA: the key does not match the CA certificate")
	}
	return ca, nil
}

// CheckUsable returns an error matching [ErrCAUnusable] unless the CA is
// valid at now.
func (ca *CA) CheckUsable(now time.Time) error {
	switch {
	case now.After(ca.cert.NotAfter):
		return fmt.Errorf("%w: it expired at %s", ErrCAUnusable, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(ca.cert.NotBefore):
		return fmt.Errorf("%w: it is not valid before %s", ErrCAUnusable, ca.cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// IssueFor signs a certificate for id and pub, an ECDSA P-256 public key
// whose private half the requester keeps, as [CA.Issue] would.
func (ca *CA) IssueFor(id Identity, pub crypto.PublicKey, opts IssueOptions) (certPEM []byte, err error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("identity: issue %s: key is %T, want ECDSA P-256", id, pub)
	}
	return ca.issue(id, ec, opts)
}

// CheckNodeNames checks the names a node certificate would carry: host
// names of letters, digits and hyphens in dot-separated labels (no
// wildcard, no trailing dot), and IP addresses that can be dialled (not
// unspecified or multicast).
func CheckNodeNames(dnsNames []string, ips []net.IP) error {
	for _, n := range dnsNames {
		if err := checkHostName(n); err != nil {
			return fmt.Errorf("DNS name %q: %w", n, err)
		}
	}
	for _, ip := range ips {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return fmt.Errorf("IP address %s cannot be dialled", ip)
		}
	}
	return nil
}

func checkHostName(n string) error {
	if n == "" || len(n) > 253 {
		return errors.New("want 1-253 characters")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("each dot-separated label must be 1-63 characters")
		}
		for i, c := range label {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(label)-1
			if !ok {
				return errors.New("want letters, digits and inner hyphens only")
			}
		}
	}
	return nil
}

// WriteKeyPEM writes the CA key to w as unencrypted PKCS #8 PEM, for the
// caller to encrypt. It fails for a key it cannot export (one in an HSM).
func (ca *CA) WriteKeyPEM(w io.Writer) error {
	ec, ok := ca.key.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("identity: the CA key (%T) cannot be exported", ca.key)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		return fmt.Errorf("identity: CA key: %w", err)
	}
	defer clear(der)
	return pem.Encode(w, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
