package officerhsm

// The PKCS#11 backend of officer.Tokens, and officer's entry points that use it.

import (
	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/officer"
)

// tokens opens officers' tokens with hsm/pkcs11.
var tokens = officer.Tokens{Open: Open}

// Open opens, and logs in to, the token u names: officer.Tokens.Open with hsm/pkcs11.
func Open(u *officer.PKCS11URI) (hsm.Token, error) { return pkcs11.Open(Config(u)) }

// Config returns the pkcs11.Config that opens the token u names.
func Config(u *officer.PKCS11URI) pkcs11.Config {
	c := pkcs11.Config{Module: u.ModulePath, TokenLabel: u.Token, PINFile: u.PINFile, PINEnv: u.PINEnv}
	if u.SlotID != nil {
		slot := *u.SlotID
		c.Slot = &slot
	}
	return c
}

// Generate is officer.Tokens.Generate: a new key in memory, its classical part in
// software or, with c.PKCS11URI, generated on that token.
func Generate(c officer.Config) (*officer.Signer, error) { return tokens.Generate(c) }

// Keygen is officer.Tokens.Keygen: it creates a key (see Generate) and writes
// NAME.key and NAME.pub to dir.
func Keygen(dir string, c officer.Config, passphrase []byte) (*officer.PublicKey, error) {
	return tokens.Keygen(dir, c, passphrase)
}

// Load is officer.Tokens.Load: it opens a key file, and the token it records if any.
func Load(path string, passphrase []byte) (*officer.Signer, error) {
	return tokens.Load(path, passphrase)
}
