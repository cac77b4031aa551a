package officer

// The private key file: every private seed of an officer in one age file encrypted
// under a passphrase (scrypt), written once and never overwritten; Keygen and Load.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"filippo.io/age"

	"github.com/custos-eu/custos/internal/atomicfile"
)

// Work factors (log2 of scrypt's N) of the key file's passphrase encryption.
const (
	// DefaultWorkFactor is age's default, about one second of one core here (and
	// 256 MiB of memory, scrypt with r = 8) for each Keygen and each Load.
	DefaultWorkFactor = 18
	// MinWorkFactor is the lowest Keygen accepts; for tests.
	MinWorkFactor = 10
	// MaxWorkFactor is the highest Keygen accepts and Load will do (age's own cap
	// for decryption), so a crafted file cannot make Load run for minutes.
	MaxWorkFactor = 22
)

// MinPassphraseLen is the shortest passphrase Keygen accepts, in bytes.
const MinPassphraseLen = 12

// maxKeyFileLen bounds what Load reads; a key file is about 600 bytes.
const maxKeyFileLen = 64 << 10

// privateJSON is the plaintext of a key file, in canonical form: exactly one of
// ClassicalSeed (software key) and PKCS11URI (key on a token) is set.
type privateJSON struct {
	Format        string `json:"format"`
	Officer       string `json:"officer"`
	Classical     Alg    `json:"classical"`
	ClassicalSeed []byte `json:"classical_seed,omitempty"`
	PKCS11URI     string `json:"pkcs11_uri,omitempty"`
	MLDSA65Seed   []byte `json:"mldsa65_seed"`
	XWingSeed     []byte `json:"xwing_seed"`
	Fingerprint   string `json:"fingerprint"`
}

// KeyFiles returns the paths Keygen writes for officer name in dir: the private key
// file NAME.key and the public bundle NAME.pub.
func KeyFiles(dir, name string) (key, pub string) {
	return filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
}

// Keygen writes a new officer key, as Tokens.Keygen does, with no token: a classical
// key on a PKCS#11 token needs officerhsm.Keygen.
func Keygen(dir string, c Config, passphrase []byte) (*PublicKey, error) {
	return Tokens{}.Keygen(dir, c, passphrase)
}

// Keygen creates a new officer key (see Tokens.Generate) and writes it to dir, which must
// exist: NAME.key, the private key file, mode 0600, encrypted with age's scrypt
// recipient under passphrase; and NAME.pub, the public bundle's canonical encoding
// and a newline, mode 0644. It never overwrites: if either file exists it refuses
// with an error wrapping fs.ErrExist, before generating anything. If it fails after
// generating, it removes what it created, including the key pair on the token.
//
// The passphrase must be at least MinPassphraseLen bytes. Keygen does not keep it;
// clearing it is the caller's (see the package documentation for the limits).
func (t Tokens) Keygen(dir string, c Config, passphrase []byte) (*PublicKey, error) {
	if err := c.valid(); err != nil {
		return nil, err
	}
	if len(passphrase) < MinPassphraseLen {
		return nil, fmt.Errorf("officer: passphrase of %d bytes; use at least %d", len(passphrase), MinPassphraseLen)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("officer: output directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("officer: output directory %s is not a directory", dir)
	}
	keyPath, pubPath := KeyFiles(dir, c.Name)
	for _, p := range []string{keyPath, pubPath} {
		if err := refuseExisting(p); err != nil {
			return nil, err
		}
	}
	s, err := t.Generate(c)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if ok {
			s.Close()
		} else {
			s.discard()
		}
	}()
	// Self-test before anything is written: the keys sign and the bundle verifies.
	var probe [32]byte
	sig, err := s.Sign(probe)
	if err == nil {
		err = s.pub.Verify(probe, sig)
	}
	if err != nil {
		return nil, fmt.Errorf("officer: new key fails its self-test: %w", err)
	}
	workFactor := c.WorkFactor
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	sealed, err := s.seal(passphrase, workFactor)
	if err != nil {
		return nil, err
	}
	if err := writeNew(keyPath, sealed, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, append(s.pub.Marshal(), '\n'), 0o644); err != nil {
		os.Remove(keyPath)
		return nil, err
	}
	ok = true
	return s.pub, nil
}

// seal returns the key file: the private JSON, age-encrypted to passphrase.
func (s *Signer) seal(passphrase []byte, workFactor int) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	j := privateJSON{
		Format: KeyFileFormat, Officer: s.pub.name, Classical: s.pub.alg,
		ClassicalSeed: s.classicalSeed, MLDSA65Seed: s.mldsaSeed, XWingSeed: s.xwingSeed,
		Fingerprint: s.pub.fp,
	}
	if s.uri != nil {
		j.PKCS11URI = s.uri.String()
	}
	plain := mustMarshal(j)
	defer clear(plain)
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("officer: %w", err)
	}
	r.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, fmt.Errorf("officer: encrypt key file: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("officer: encrypt key file: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("officer: encrypt key file: %w", err)
	}
	return buf.Bytes(), nil
}

// Load opens a key file, as Tokens.Load does, with no token: a key file whose
// classical key is on a PKCS#11 token needs officerhsm.Load.
func Load(path string, passphrase []byte) (*Signer, error) { return Tokens{}.Load(path, passphrase) }

// Load opens the key file at path with passphrase and returns the officer's Signer.
// A wrong passphrase is ErrBadPassphrase; a file that is not a passphrase-encrypted
// officer key file, or whose contents are malformed (*ParseError), is refused. For a
// key on a PKCS#11 token, Load opens with t.Open the token the file records (module,
// token, object and PIN source, never the PIN) and finds the key by label; if it is
// not the key the file was made with, Load fails with ErrKeyMismatch. Load checks
// that the keys it rebuilds have the fingerprint the file records.
//
// Load costs one scrypt derivation at the file's work factor (about a second at the
// default) and refuses files that demand more than MaxWorkFactor.
func (t Tokens) Load(path string, passphrase []byte) (*Signer, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: the passphrase is empty", ErrBadPassphrase)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("officer: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileLen+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("officer: read %s: %w", path, err)
	}
	if len(data) > maxKeyFileLen {
		return nil, fmt.Errorf("officer: %s is not an officer key file (larger than %d bytes)", path, maxKeyFileLen)
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("officer: %w", err)
	}
	id.SetMaxWorkFactor(MaxWorkFactor)
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			if slices.Equal(noMatch.StanzaTypes, []string{"scrypt"}) {
				return nil, fmt.Errorf("%w %s", ErrBadPassphrase, path)
			}
			return nil, fmt.Errorf("officer: %s is not an officer key file: it is not passphrase-encrypted", path)
		}
		return nil, fmt.Errorf("officer: %s is not a readable officer key file: %v", path, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileLen))
	defer clear(plain)
	if err != nil {
		return nil, fmt.Errorf("officer: %s is damaged: %v", path, err)
	}
	s, err := t.loadPrivate(plain)
	if err != nil {
		return nil, fmt.Errorf("officer: %s: %w", path, err)
	}
	return s, nil
}

// loadPrivate parses a key file's plaintext strictly and rebuilds the Signer.
func (t Tokens) loadPrivate(plain []byte) (*Signer, error) {
	const format = "key file"
	var j privateJSON
	if err := decodeJSON(format, plain, maxKeyFileLen, &j, false); err != nil {
		return nil, err
	}
	wipe := func() { clear(j.ClassicalSeed); clear(j.MLDSA65Seed); clear(j.XWingSeed) }
	canon := mustMarshal(j)
	perr := checkCanonical(format, plain, canon)
	clear(canon)
	switch {
	case perr != nil:
	case j.Format != KeyFileFormat:
		perr = parseErr(format, "format", "%q, want %q", j.Format, KeyFileFormat)
	case ValidateName(j.Officer) != nil:
		perr = parseErr(format, "officer", "%v", ValidateName(j.Officer))
	case !j.Classical.valid():
		perr = parseErr(format, "classical", "unknown algorithm %q", j.Classical)
	case (j.ClassicalSeed == nil) == (j.PKCS11URI == ""):
		perr = parseErr(format, "", "needs exactly one of classical_seed and pkcs11_uri")
	case j.ClassicalSeed != nil && len(j.ClassicalSeed) != seedSize:
		perr = parseErr(format, "classical_seed", "not %d bytes", seedSize)
	case j.PKCS11URI != "" && j.Classical != ECDSAP256:
		perr = parseErr(format, "classical", "a PKCS#11 key must be %s", ECDSAP256)
	case len(j.MLDSA65Seed) != seedSize:
		perr = parseErr(format, "mldsa65_seed", "not %d bytes", seedSize)
	case len(j.XWingSeed) != seedSize:
		perr = parseErr(format, "xwing_seed", "not %d bytes", seedSize)
	}
	if perr != nil {
		wipe()
		return nil, perr
	}
	if j.PKCS11URI == "" {
		s, err := newSigner(j.Officer, j.Classical, j.ClassicalSeed, j.MLDSA65Seed, j.XWingSeed, nil, nil)
		if err != nil {
			return nil, err
		}
		if s.pub.fp != j.Fingerprint {
			s.Close()
			return nil, fmt.Errorf("%w: its keys have fingerprint %s, it records %s", ErrKeyMismatch, s.pub.fp, j.Fingerprint)
		}
		return s, nil
	}
	uri, err := ParsePKCS11URI(j.PKCS11URI)
	if err != nil {
		wipe()
		return nil, err
	}
	tok, err := t.open(uri)
	if err != nil {
		wipe()
		return nil, fmt.Errorf("open the token of %s: %w", uri, err)
	}
	s, err := newSigner(j.Officer, j.Classical, nil, j.MLDSA65Seed, j.XWingSeed, uri, tok)
	if err != nil {
		tok.Close()
		return nil, err
	}
	if s.pub.fp != j.Fingerprint {
		s.Close()
		return nil, fmt.Errorf("%w: key %q on the token of %s is not the key this file was made with (fingerprint %s, the file records %s)",
			ErrKeyMismatch, uri.Object, uri, s.pub.fp, j.Fingerprint)
	}
	return s, nil
}

// refuseExisting returns an error wrapping fs.ErrExist if something is at path.
func refuseExisting(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("officer: %s already exists; refusing to overwrite it: %w", path, fs.ErrExist)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("officer: %w", err)
	}
}

// writeNew writes data to a new file at path with mode perm, atomically and never
// over an existing file: it writes a temporary file in the same directory, syncs
// it, then hard-links it to path, which fails if path exists.
func writeNew(path string, data []byte, perm os.FileMode) error {
	if err := atomicfile.WriteNew(path, data, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("officer: %s already exists; refusing to overwrite it: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("officer: write %s: %w", path, err)
	}
	return nil
}
