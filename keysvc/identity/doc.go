// Package identity says who is on the other end of a Custos mTLS connection.
//
// Every node and client certificate is issued by the cluster CA and names
// one [Identity]: cluster, role, name and region, in a single URI SAN. The
// node, the CLI and the backup agent's client build their TLS configurations
// here ([ServerConfig], [ClientConfig]) so that every connection checks the
// same things the same way, and HTTP handlers read the caller with
// [PeerIdentity]. [Fingerprint] names the exact certificate in the key-op log.
//
// # The identity URI
//
// A certificate carries exactly one URI SAN with the scheme "custos":
//
//	custos://<cluster>/<role>/<name>?region=<region>
//
//	cluster  1-63 bytes of [a-z0-9._-], first and last a letter or digit, no ".."
//	role     node | agent | officer | auditor | operator
//	name     same rule as cluster
//	region   ISO 3166-1 alpha-2 code of an EU or EEA state, upper case
//	         (see [EUEEARegions]; Greece is GR, not EL)
//
// for example custos://prod/agent/agent-payroll?region=FR. Nothing else is
// accepted: no port, user info, percent-encoding, trailing slash, fragment,
// other query parameter or upper-case letters, so each identity has exactly
// one URI and [ParseURI] of [Identity.String] gives the identity back. URI
// SANs with other schemes (a SPIFFE ID, say) are ignored, so a deployment
// may bring its own CA as long as it puts this URI in its certificates.
// The subject common name is informative only and never read.
//
// # TLS
//
// [ServerConfig] and [ClientConfig] load a certificate, its key and the
// cluster CA file ([TLSFiles]) and return configurations that accept only
// TLS 1.3, offer the hybrid post-quantum key exchange X25519MLKEM768 (and
// X25519 for peers without it), trust the cluster CA alone (never the
// system roots), and require a certificate on both sides. Their
// VerifyConnection hook then parses the peer's identity and refuses a peer
// of another cluster ([ErrWrongCluster]), and, when asked through
// [Option]s, a role ([ErrRoleNotAllowed]), region ([ErrRegionNotAllowed])
// or key exchange ([ErrClassicalKeyExchange]) that is not allowed. The
// cluster expected is the one in the local certificate.
//
// A node's key is not a file: it is an ECDSA P-256 key inside the node's
// HSM, given as TLSFiles.Signer, and the certificate must be for that key
// ([ErrCertificateKeyMismatch] otherwise). Client identities keep a key
// file.
//
// # CA
//
// [NewCA] makes the ECDSA P-256 CA that `custos dev up` and tests use.
// [CA.Issue] issues client certificates from it, with a fresh key; nodes
// send a certificate request made with their HSM key ([NewCSR]) and
// [CA.IssueCSR] issues their certificates from it ([ErrBadCSR] for a
// request it refuses; [ParseCSR] checks a request alone). `custos pki`
// keeps a deployment's CA: [NewCAWithKey] and [OpenCA] take a key the
// caller holds (on a PKCS#11 token, or decrypted from a file),
// [CA.CheckUsable] refuses an expired CA, and [CA.IssueFor] issues for a
// key a request brings. Real deployments may also use another CA that
// writes the same URI SAN; nothing here depends on which CA issued a
// certificate beyond chain verification.
//
// # Errors
//
// [ParseURI] and [Identity.Validate] return [*ParseError]; so does
// [FromCertificate] for a malformed or repeated custos URI, and
// [ErrNoIdentity] when there is none. The connection checks wrap the
// sentinels above with the peer's identity and what was expected.
package identity
