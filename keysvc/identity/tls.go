// TLS configurations for every Custos connection, and the peer checks they run.

package identity

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// Errors from the connection checks, wrapped with the peer's identity and
// what was allowed. The TLS handshake fails with them on the side that
// checked; the other side sees a bad-certificate alert.
var (
	ErrWrongCluster     = errors.New("identity: peer belongs to another cluster")
	ErrRoleNotAllowed   = errors.New("identity: peer role not allowed")
	ErrRegionNotAllowed = errors.New("identity: peer region not allowed")
	// ErrClassicalKeyExchange means a connection that must be post-quantum
	// ([RequireHybridKeyExchange]) negotiated another key exchange.
	ErrClassicalKeyExchange = errors.New("identity: connection did not use the hybrid post-quantum key exchange X25519MLKEM768")
	// ErrCertificateKeyMismatch means a certificate was issued for
	// another key than the signer given with it (TLSFiles.Signer): a
	// certificate from another node, or from before the node's HSM key
	// was made again.
	ErrCertificateKeyMismatch = errors.New("identity: certificate issued for another key")
	// ErrNoPeerCertificate means a connection has no verified peer
	// certificate, so its peer has no identity.
	ErrNoPeerCertificate = errors.New("identity: connection has no verified peer certificate")
)

// curvePreferences are the key exchanges offered: hybrid post-quantum
// first, X25519 for peers without it (see [RequireHybridKeyExchange]).
var curvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519}

// TLSFiles names the PEM files of one party's TLS material. The private key
// is either a PEM file (Key, for clients) or a signer whose key never leaves
// its HSM (Signer, for nodes); exactly one of the two is set.
type TLSFiles struct {
	Cert string // certificate, leaf first (intermediates may follow)
	Key  string // its private key
	CA   string // the cluster CA certificates, see [LoadCertPool]
	// Signer holds the certificate's private key instead of Key: a node's
	// ECDSA P-256 key inside its HSM. The certificate must be for its
	// public key.
	Signer crypto.Signer
}

// IsZero reports whether f names nothing. Use it rather than comparing with
// TLSFiles{}: a Signer of a non-comparable type (ed25519.PrivateKey, a
// slice) makes == panic.
func (f TLSFiles) IsZero() bool {
	return f.Cert == "" && f.Key == "" && f.CA == "" && f.Signer == nil
}

// Option restricts which peers a configuration accepts.
type Option func(*policy)

type policy struct {
	roles      []Role
	rolesSet   bool
	regions    []string
	regionsSet bool
	hybridOnly bool
}

// RequireRoles accepts only peers with one of roles: a raft or share-release
// peer must be a [RoleNode]. Several calls add up. [ClientConfig] requires
// the server to be a node unless told otherwise.
func RequireRoles(roles ...Role) Option {
	return func(p *policy) { p.rolesSet = true; p.roles = append(p.roles, roles...) }
}

// AllowRegions accepts only peers in one of regions, which must be EU/EEA
// codes (the cluster's allowed regions, for example). Several calls add up.
func AllowRegions(regions ...string) Option {
	return func(p *policy) { p.regionsSet = true; p.regions = append(p.regions, regions...) }
}

// RequireHybridKeyExchange refuses a connection that did not negotiate
// X25519MLKEM768, for channels that must resist harvest-now-decrypt-later
// (the cluster channel): without it a peer offering only X25519, or a
// process run with GODEBUG=tlsmlkem=0, silently gets a classical exchange.
func RequireHybridKeyExchange() Option {
	return func(p *policy) { p.hybridOnly = true }
}

// valid checks every option together.
func (p *policy) valid() error {
	if p.rolesSet && len(p.roles) == 0 {
		return errors.New("identity: RequireRoles needs at least one role")
	}
	for _, r := range p.roles {
		if !r.Valid() {
			return fmt.Errorf("identity: RequireRoles: role %q is not one of %s", r, roleList())
		}
	}
	if p.regionsSet && len(p.regions) == 0 {
		return errors.New("identity: AllowRegions needs at least one region")
	}
	for _, r := range p.regions {
		if !IsEUEEA(r) {
			return fmt.Errorf("identity: AllowRegions: %q is not an upper-case EU/EEA country code", r)
		}
	}
	return nil
}

// check is the VerifyConnection hook: the peer's certificate chain has been
// verified against the cluster CA by then.
func (p *policy) check(cluster string, cs tls.ConnectionState) error {
	id, err := PeerIdentity(cs)
	if err != nil {
		return err
	}
	if id.Cluster != cluster {
		return fmt.Errorf("%w: peer %s, this is cluster %q", ErrWrongCluster, id, cluster)
	}
	if len(p.roles) > 0 && !slices.Contains(p.roles, id.Role) {
		return fmt.Errorf("%w: peer %s has role %s, allowed here: %v", ErrRoleNotAllowed, id, id.Role, p.roles)
	}
	if len(p.regions) > 0 && !slices.Contains(p.regions, id.Region) {
		return fmt.Errorf("%w: peer %s is in %s, allowed here: %v", ErrRegionNotAllowed, id, id.Region, p.regions)
	}
	if p.hybridOnly && cs.CurveID != tls.X25519MLKEM768 {
		return fmt.Errorf("%w: peer %s negotiated %v (does it offer X25519MLKEM768? is GODEBUG=tlsmlkem=0 set?)",
			ErrClassicalKeyExchange, id, cs.CurveID)
	}
	return nil
}

// ServerConfig returns the configuration of a node's listeners (API and
// cluster): TLS 1.3 only, X25519MLKEM768 or X25519, a client certificate
// required and verified against the CA file only, and a peer that must be
// in the cluster named by the node's own certificate and pass opts.
//
// It fails, saying which file is at fault, if the files do not load, the
// certificate carries no identity, or it does not verify against the CA
// for server authentication (an expired certificate or the wrong CA file).
// The configuration does not reload files.
func ServerConfig(files TLSFiles, opts ...Option) (*tls.Config, error) {
	cert, pool, cluster, p, err := load(files, x509.ExtKeyUsageServerAuth, nil, opts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: slices.Clone(curvePreferences),
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        pool,
		VerifyConnection: func(cs tls.ConnectionState) error { return p.check(cluster, cs) },
	}, nil
}

// ClientConfig returns the configuration for connecting to a node, as the
// CLI, the backup agent or another node: as [ServerConfig], but the server
// must also match the host name dialled (its DNS or IP SAN) and, unless
// [RequireRoles] says otherwise, be a [RoleNode].
func ClientConfig(files TLSFiles, opts ...Option) (*tls.Config, error) {
	cert, pool, cluster, p, err := load(files, x509.ExtKeyUsageClientAuth, []Role{RoleNode}, opts)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: slices.Clone(curvePreferences),
		Certificates:     []tls.Certificate{cert},
		RootCAs:          pool,
		VerifyConnection: func(cs tls.ConnectionState) error { return p.check(cluster, cs) },
	}, nil
}

// load reads files and checks the certificate is usable for usage.
func load(files TLSFiles, usage x509.ExtKeyUsage, defaultRoles []Role, opts []Option) (
	tls.Certificate, *x509.CertPool, string, *policy, error) {
	fail := func(err error) (tls.Certificate, *x509.CertPool, string, *policy, error) {
		return tls.Certificate{}, nil, "", nil, err
	}
	p := &policy{}
	for _, o := range opts {
		o(p)
	}
	if err := p.valid(); err != nil {
		return fail(err)
	}
	if !p.rolesSet {
		p.roles = defaultRoles
	}
	pool, err := LoadCertPool(files.CA)
	if err != nil {
		return fail(err)
	}
	cert, leaf, err := loadCertificate(files)
	if err != nil {
		return fail(err)
	}
	id, err := FromCertificate(leaf)
	if err != nil {
		return fail(fmt.Errorf("identity: %s: %w", files.Cert, err))
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fail(fmt.Errorf("identity: %s: intermediate: %w", files.Cert, err))
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage},
	}); err != nil {
		what := "client"
		if usage == x509.ExtKeyUsageServerAuth {
			what = "server"
		}
		return fail(fmt.Errorf("identity: certificate %s (%s) is not valid for TLS %s authentication under CA file %s: %w",
			files.Cert, id, what, files.CA, err))
	}
	return cert, pool, id.Cluster, p, nil
}

// loadCertificate reads the certificate chain and its private key: the Key
// file, or the Signer, whose public key the leaf must carry.
func loadCertificate(files TLSFiles) (tls.Certificate, *x509.Certificate, error) {
	fail := func(err error) (tls.Certificate, *x509.Certificate, error) { return tls.Certificate{}, nil, err }
	switch {
	case files.Signer != nil && files.Key != "":
		return fail(fmt.Errorf("identity: %s: a key file (%s) and a signer were both given; want one", files.Cert, files.Key))
	case files.Signer == nil:
		cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			return fail(fmt.Errorf("identity: load %s and %s: %w", files.Cert, files.Key, err))
		}
		leaf := cert.Leaf
		if leaf == nil { // GODEBUG=x509keypairleaf=0
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return fail(fmt.Errorf("identity: %s: %w", files.Cert, err))
			}
		}
		return cert, leaf, nil
	}
	certs, err := readCertificates(files.Cert)
	if err != nil {
		return fail(err)
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(files.Signer.Public()) {
		return fail(fmt.Errorf("%w: %s is not for this signer's key (HSM key); have the cluster CA sign a CSR made with it",
			ErrCertificateKeyMismatch, files.Cert))
	}
	cert := tls.Certificate{PrivateKey: files.Signer, Leaf: leaf}
	for _, c := range certs {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, leaf, nil
}

// PeerIdentity returns the identity of the peer of a connection made with
// a configuration from this package, e.g. PeerIdentity(*r.TLS) in an HTTP
// handler (r.TLS is nil on a plain-HTTP request). It reads the verified
// leaf certificate (its fingerprint: Fingerprint(cs.VerifiedChains[0][0]))
// and returns [ErrNoPeerCertificate] when there is none; it does not check
// cluster or role, which the handshake already did.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, ErrNoPeerCertificate
	}
	return FromCertificate(cs.VerifiedChains[0][0])
}
