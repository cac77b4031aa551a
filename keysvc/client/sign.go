// Signing key-op requests: every wrap, unwrap, rewrap, datakey and batch
// carries a reqsig message signed with the client certificate's key, in the
// Custos-Request-Signature header (docs/agent-api.md).

package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// signer signs key-op requests as the client certificate's holder.
type signer struct {
	key     crypto.Signer
	cluster string
	err     error // why this client cannot sign, when it cannot
	now     func() time.Time
}

// newSigner takes the key and cluster of tc's first certificate. A
// configuration it cannot sign with is not an error here (the client may
// only read); key operations then fail with err.
func newSigner(tc *tls.Config) signer {
	s := signer{now: time.Now}
	fail := func(format string, a ...any) signer {
		s.err = fmt.Errorf("client: cannot sign key-op requests: "+format, a...)
		return s
	}
	if len(tc.Certificates) == 0 || len(tc.Certificates[0].Certificate) == 0 {
		return fail("no client certificate in the TLS configuration")
	}
	c := tc.Certificates[0]
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fail("client certificate: %v", err)
		}
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return fail("client certificate: %v", err)
	}
	key, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return fail("the certificate's private key is a %T, not a crypto.Signer", c.PrivateKey)
	}
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return fail("an ECDSA key on %s, want P-256", pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fail("a %T key, want ECDSA P-256 or Ed25519", pub)
	}
	s.key, s.cluster = key, id.Cluster
	return s
}

// sign completes r (cluster, a fresh request id, the time) and returns the
// header value. Each call makes a new request id: one signature is one
// attempt of one call.
func (s signer) sign(r reqsig.Request) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	r.Cluster = s.cluster
	r.RequestID = reqsig.NewRequestID()
	r.Time = s.now().Unix()
	msg, err := r.Marshal()
	if err != nil {
		return "", fmt.Errorf("client: sign %s request: %w", r.Op, err)
	}
	sig, err := reqsig.Sign(s.key, msg)
	if err != nil {
		return "", fmt.Errorf("client: sign %s request: %w", r.Op, err)
	}
	return reqsig.EncodeHeader(msg, sig), nil
}

// contextHash is reqsig.ContextHash of a call's context, with the error
// a caller can act on.
func contextHash(op string, c map[string]string) ([32]byte, error) {
	h, err := reqsig.ContextHash(wrapkey.Context(c))
	if err != nil {
		return h, fmt.Errorf("client: %s: the context cannot be signed: %w", op, err)
	}
	return h, nil
}
