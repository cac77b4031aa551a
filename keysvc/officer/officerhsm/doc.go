// Package officerhsm opens officer keys whose classical part lives on a PKCS#11
// token, through hsm/pkcs11 (cgo, crypto11). Package officer itself is pure: it
// parses, signs and verifies, and takes the token through the officer.Tokens seam;
// this package fills that seam. Import it only where a token may be opened (the
// custos CLI); code that only verifies, or uses software keys, imports officer alone.
//
// [Generate], [Keygen] and [Load] are officer's, with tokens:
//
//	pub, err := officerhsm.Keygen(dir, officer.Config{Name: "alice", PKCS11URI: uri}, passphrase)
//	s, err := officerhsm.Load(filepath.Join(dir, "alice.key"), passphrase)
//	defer s.Close() // closes the token; the key stays on it
//
// [Open] opens the token an officer.PKCS11URI names, and [Config] is the
// pkcs11.Config that does it. Errors from the token are those of package hsm.
package officerhsm
