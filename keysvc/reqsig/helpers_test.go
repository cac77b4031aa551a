package reqsig_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func parsePair(t testing.TB, certPEM, keyPEM []byte) (leaf *x509.Certificate, key crypto.Signer) {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf, pair.PrivateKey.(crypto.Signer)
}
