// Package nodetls is a node's TLS key in its HSM: the one key of its
// certificate on the API, the raft listener and as a client of other
// nodes. The daemon and the CLI's dev tools take it from here without
// linking the node runtime.
package nodetls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"

	"github.com/custos-eu/custos/hsm"
)

// LabelTLS is the HSM label of the node's TLS key, ECDSA P-256, generated
// in the HSM.
const LabelTLS = "custos:node:tls"

// TLSSigner returns the node's TLS key (LabelTLS) on tok, generating it on
// first use: non-extractable, it never leaves the HSM, and the node's
// certificate is issued for it from a CSR (identity.NewCSR). Later calls
// return the same key.
func TLSSigner(tok hsm.Token) (crypto.Signer, error) {
	s, err := tok.Signer(LabelTLS)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		s, err = tok.GenerateSigner(LabelTLS)
	}
	if err != nil {
		return nil, fmt.Errorf("nodetls: node TLS key %q: %w", LabelTLS, err)
	}
	if pub, ok := s.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("nodetls: node TLS key %q is not ECDSA P-256", LabelTLS)
	}
	return s, nil
}
