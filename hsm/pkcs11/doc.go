// Package pkcs11 is the PKCS#11 backend of hsm.Token: Open a token by label (or slot)
// with a Config whose PIN comes from a file or an environment variable.
//
//	tok, err := pkcs11.Open(pkcs11.Config{Module: "/usr/lib/softhsm/libsofthsm2.so",
//		TokenLabel: "custos-node-1", PINFile: "/etc/custos/hsm.pin"})
//
// It uses github.com/ThalesGroup/crypto11 and github.com/miekg/pkcs11 and needs cgo;
// built without cgo, Open fails with a clear error. Several tokens of one module may be
// open at once in one process; the module is loaded and initialised once and finalised
// when the last token closes. A Token whose sessions are lost, or whose library was
// finalised, reconnects and retries the failed operation once (see Open). Rescan makes
// a module look for new tokens. Errors are *hsm.Error values, as for every backend.
package pkcs11
