// Package hsm is Custos's narrow door to an HSM: the Token interface (AES-256-GCM
// sealing and ECDSA P-256 signing with keys that are generated inside the token and
// never leave it), and the errors and small types around it. It has no backend and
// links no cgo, so code that only uses a Token imports hsm alone.
//
// Open a token with a backend (subpackage pkcs11, for a PKCS#11 HSM), then use the keys
// by label:
//
//	tok, err := pkcs11.Open(pkcs11.Config{Module: "/usr/lib/softhsm/libsofthsm2.so",
//		TokenLabel: "custos-node-1", PINFile: "/etc/custos/hsm.pin"})
//	if err != nil { ... }
//	defer tok.Close()
//	err = tok.GenerateAESKey("custos:kek:k1:1")
//	sealed, err := tok.Seal("custos:kek:k1:1", share, aad)
//	share, err = tok.Open("custos:kek:k1:1", sealed, aad) // errors.Is(err, hsm.ErrOpen) if tampered
//
// Every Token is safe for concurrent use. Errors are *Error values carrying the operation
// and key label and wrapping one of the sentinels (ErrKeyNotFound, ErrOpen, …) for
// errors.Is; their messages never contain raw PKCS#11 return codes, which are kept for
// operator logs in (*Error).Detail.
//
// Subpackage pkcs11 is the PKCS#11 backend (cgo); hsmtest has an in-memory fake with
// the same semantics, the conformance suite both backends pass, and a SoftHSM helper
// for tests; softhsm creates SoftHSM tokens for tests, demos and development clusters.
package hsm
