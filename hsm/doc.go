// Package hsm is Custos's narrow door to a PKCS#11 HSM: AES-256-GCM sealing and
// ECDSA P-256 signing with keys that are generated inside the token and never leave it.
//
// Open a token by label with a Config whose PIN comes from a file or an environment
// variable, then use the keys by label:
//
//	tok, err := hsm.Open(hsm.Config{Module: "/usr/lib/softhsm/libsofthsm2.so",
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
// The PKCS#11 backend (Open) uses github.com/ThalesGroup/crypto11 and
// github.com/miekg/pkcs11 and needs cgo; without cgo Open fails with a clear error.
// Several tokens of one module may be open at once in one process; the module is loaded
// and initialised once and finalised when the last token closes. A Token whose sessions
// are lost, or whose library was finalised, reconnects and retries the failed operation
// once (see Open). Rescan makes a module look for new tokens.
//
// Subpackage hsmtest has an in-memory fake with the same semantics, the conformance
// suite both backends pass, and a SoftHSM helper for tests; subpackage softhsm creates
// SoftHSM tokens for tests, demos and development clusters.
package hsm
