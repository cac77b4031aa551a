package officer_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/custos-eu/custos/keysvc/officer"
)

// keygen writes a cheap-to-open key for name into a fresh directory.
func keygen(t testing.TB, c officer.Config) (dir string, pub *officer.PublicKey) {
	t.Helper()
	dir = t.TempDir()
	if c.WorkFactor == 0 {
		c.WorkFactor = testWorkFactor
	}
	pub, err := officer.Keygen(dir, c, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	return dir, pub
}

func load(t testing.TB, path string) *officer.Signer {
	t.Helper()
	s, err := officer.Load(path, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// decryptKeyFile returns a key file's plaintext, as only the passphrase holder can.
func decryptKeyFile(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, _ := age.NewScryptIdentity(string(testPassphrase))
	r, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeKeyFile encrypts plaintext as a key file would be, at the test work factor.
func writeKeyFile(t testing.TB, path string, plaintext []byte) {
	t.Helper()
	r, _ := age.NewScryptRecipient(string(testPassphrase))
	r.SetWorkFactor(testWorkFactor)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plaintext)
	w.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeygenLoad(t *testing.T) {
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) {
			dir, pub := keygen(t, officer.Config{Name: "alice", Classical: alg})
			keyPath, pubPath := officer.KeyFiles(dir, "alice")
			if keyPath != filepath.Join(dir, "alice.key") || pubPath != filepath.Join(dir, "alice.pub") {
				t.Fatalf("KeyFiles = %s, %s", keyPath, pubPath)
			}
			for path, mode := range map[string]fs.FileMode{keyPath: 0o600, pubPath: 0o644} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != mode {
					t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("directory holds %d entries, want the two key files (no temporary files left)", len(entries))
			}
			pubFile, err := os.ReadFile(pubPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pubFile, append(pub.Marshal(), '\n')) {
				t.Fatal("NAME.pub is not the canonical bundle and a newline")
			}
			fromFile, err := officer.ParsePublicKey(pubFile)
			if err != nil {
				t.Fatal(err)
			}
			keyFile, _ := os.ReadFile(keyPath)
			if !bytes.HasPrefix(keyFile, []byte("age-encryption.org/v1\n-> scrypt ")) {
				t.Fatalf("key file is not an age scrypt file: %.40q", keyFile)
			}
			if bytes.Contains(keyFile, []byte("alice")) || bytes.Contains(keyFile, []byte("seed")) {
				t.Fatal("key file shows plaintext")
			}
			s := load(t, keyPath)
			if !s.Public().Equal(fromFile) {
				t.Fatal("loaded key is not the one in NAME.pub")
			}
			d := randomDigest(t)
			sig, err := s.Sign(d)
			if err != nil {
				t.Fatal(err)
			}
			if err := fromFile.Verify(d, sig); err != nil {
				t.Fatal(err)
			}
			plain := decryptKeyFile(t, keyPath)
			want := `^\{"format":"custos-officer-key/v1","officer":"alice","classical":"` + string(alg) +
				`","classical_seed":"[A-Za-z0-9+/]{43}=","mldsa65_seed":"[A-Za-z0-9+/]{43}=","xwing_seed":"[A-Za-z0-9+/]{43}=","fingerprint":"` + pub.Fingerprint() + `"\}$`
			if !regexp.MustCompile(want).Match(plain) {
				t.Fatalf("key file plaintext %s\ndoes not match %s", plain, want)
			}
		})
	}
}

// The default work factor is age's, 2^18; this costs a second (more under -race).
func TestDefaultWorkFactor(t *testing.T) {
	if testing.Short() {
		t.Skip("scrypt at the default work factor is slow")
	}
	dir := t.TempDir()
	if _, err := officer.Keygen(dir, officer.Config{Name: "alice"}, testPassphrase); err != nil {
		t.Fatal(err)
	}
	keyFile, _ := os.ReadFile(filepath.Join(dir, "alice.key"))
	if !regexp.MustCompile(`^age-encryption\.org/v1\n-> scrypt [A-Za-z0-9+/]{22} 18\n`).Match(keyFile) {
		t.Fatalf("key file header: %.80q", keyFile)
	}
}

func TestKeygenRefusesToOverwrite(t *testing.T) {
	for _, existing := range []string{"alice.key", "alice.pub"} {
		t.Run(existing, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, existing)
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := officer.Keygen(dir, officer.Config{Name: "alice", WorkFactor: testWorkFactor}, testPassphrase)
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
				t.Fatalf("Keygen = %v, want fs.ErrExist", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "precious" {
				t.Fatal("existing file was changed")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("Keygen left %d entries, want only the existing file", len(entries))
			}
		})
	}
	// A symlink at the path counts as existing, even if dangling.
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "alice.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := officer.Keygen(dir, officer.Config{Name: "alice", WorkFactor: testWorkFactor}, testPassphrase); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Keygen over a dangling symlink = %v, want fs.ErrExist", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Keygen wrote through the symlink")
	}
}

func TestKeygenRefusals(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	cases := []struct {
		name       string
		dir        string
		c          officer.Config
		passphrase []byte
		want       string
	}{
		{"bad name", dir, officer.Config{Name: "Alice"}, testPassphrase, "officer id"},
		{"path in name", dir, officer.Config{Name: "../alice"}, testPassphrase, "officer id"},
		{"unknown alg", dir, officer.Config{Name: "alice", Classical: "rsa-2048"}, testPassphrase, "unknown classical algorithm"},
		{"ed25519 on token", dir, officer.Config{Name: "alice", Classical: officer.Ed25519, PKCS11URI: "pkcs11:token=t;object=o?module-path=/m.so&pin-source=env:P"}, testPassphrase, "PKCS#11 token holds an ecdsa-p256 key"},
		{"bad uri", dir, officer.Config{Name: "alice", PKCS11URI: "pkcs11:object=o"}, testPassphrase, "malformed pkcs11 uri"},
		{"work factor low", dir, officer.Config{Name: "alice", WorkFactor: 9}, testPassphrase, "work factor 9"},
		{"work factor high", dir, officer.Config{Name: "alice", WorkFactor: 23}, testPassphrase, "work factor 23"},
		{"short passphrase", dir, officer.Config{Name: "alice"}, []byte("short"), "at least 12"},
		{"no passphrase", dir, officer.Config{Name: "alice"}, nil, "at least 12"},
		{"missing dir", filepath.Join(dir, "nope"), officer.Config{Name: "alice"}, testPassphrase, "no such file"},
		{"dir is a file", file, officer.Config{Name: "alice"}, testPassphrase, "not a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.c.WorkFactor == 0 {
				c.c.WorkFactor = testWorkFactor
			}
			_, err := officer.Keygen(c.dir, c.c, c.passphrase)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Keygen = %v, want an error saying %q", err, c.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("refused Keygens left %d entries", len(entries))
	}
}

func TestLoadWrongPassphrase(t *testing.T) {
	dir, _ := keygen(t, officer.Config{Name: "alice"})
	keyPath, _ := officer.KeyFiles(dir, "alice")
	for _, pw := range [][]byte{[]byte("correct horse battery stapl"), []byte("x"), nil} {
		s, err := officer.Load(keyPath, pw)
		if !errors.Is(err, officer.ErrBadPassphrase) {
			t.Fatalf("Load with %q = %v, %v; want ErrBadPassphrase", pw, s, err)
		}
	}
}

func TestLoadRefusesOtherFiles(t *testing.T) {
	dir, _ := keygen(t, officer.Config{Name: "alice"})
	keyPath, pubPath := officer.KeyFiles(dir, "alice")
	keyFile, _ := os.ReadFile(keyPath)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	x25519, _ := age.GenerateX25519Identity()
	var toX25519 bytes.Buffer
	w, _ := age.Encrypt(&toX25519, x25519.Recipient())
	w.Write([]byte("{}"))
	w.Close()
	highWork := regexp.MustCompile(`(-> scrypt \S+) \d+\n`).ReplaceAll(keyFile, []byte("$1 23\n"))

	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.key"), "no such file"},
		{"public bundle", pubPath, "not a readable officer key file"},
		{"empty", write("empty", nil), "not a readable officer key file"},
		{"x25519 age file", write("x25519", toX25519.Bytes()), "not passphrase-encrypted"},
		{"truncated", write("truncated", keyFile[:len(keyFile)-10]), "damaged"},
		{"tampered payload", write("tampered", flipLast(keyFile)), "damaged"},
		{"work factor too high", write("highwork", highWork), "work factor too large"},
		{"huge", write("huge", make([]byte, 70<<10)), "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := officer.Load(c.path, testPassphrase)
			if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, officer.ErrBadPassphrase) {
				t.Fatalf("Load = %v, %v; want an error saying %q", s, err, c.want)
			}
		})
	}
}

func flipLast(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)-1] ^= 1
	return b
}

// A key file whose plaintext is not exactly what Keygen writes is refused, even
// though it decrypts: the format is as strict inside as outside.
func TestLoadRefusesMalformedContents(t *testing.T) {
	dir, pub := keygen(t, officer.Config{Name: "alice"})
	keyPath, _ := officer.KeyFiles(dir, "alice")
	plain := decryptKeyFile(t, keyPath)
	edDir, _ := keygen(t, officer.Config{Name: "alice", Classical: officer.Ed25519})
	edKey, _ := officer.KeyFiles(edDir, "alice")
	edPlain := decryptKeyFile(t, edKey)
	field := func(name string) []byte {
		return regexp.MustCompile(`"` + name + `":"[^"]*"`).Find(plain)
	}
	set := func(name, value string) []byte {
		return bytes.Replace(plain, field(name), []byte(`"`+name+`":`+value), 1)
	}
	otherFP := `"sha256:` + strings.Repeat("0", 64) + `"`

	cases := []struct {
		name     string
		plain    []byte
		parseErr string // the *ParseError's field; "-" for ErrKeyMismatch
	}{
		{"whitespace", bytes.Replace(plain, []byte(`,"officer"`), []byte(`, "officer"`), 1), ""},
		{"unknown field", bytes.Replace(plain, []byte(`{"format"`), []byte(`{"note":"x","format"`), 1), ""},
		{"wrong format", set("format", `"custos-officer-key/v0"`), "format"},
		{"bad officer", set("officer", `"Alice"`), "officer"},
		{"bad alg", set("classical", `"rsa"`), "classical"},
		{"short seed", set("mldsa65_seed", `"AAAA"`), "mldsa65_seed"},
		{"short xwing seed", set("xwing_seed", `"AAAA"`), "xwing_seed"},
		{"short classical seed", set("classical_seed", `"AAAA"`), "classical_seed"},
		{"no classical key", bytes.Replace(plain, append([]byte(","), field("classical_seed")...), nil, 1), ""},
		{"both seed and uri", bytes.Replace(plain, field("classical_seed"), append(field("classical_seed"), []byte(`,"pkcs11_uri":"pkcs11:token=t;object=o?module-path=/m&pin-source=env:P"`)...), 1), ""},
		{"renamed", set("officer", `"bob"`), "-"},
		{"other fingerprint", set("fingerprint", otherFP), "-"},
		{"alg relabelled", bytes.Replace(edPlain, []byte(`"classical":"ed25519"`), []byte(`"classical":"ecdsa-p256"`), 1), "-"},
		{"not json", []byte("alice"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.key")
			writeKeyFile(t, path, c.plain)
			s, err := officer.Load(path, testPassphrase)
			if c.parseErr == "-" {
				if !errors.Is(err, officer.ErrKeyMismatch) {
					t.Fatalf("Load = %v, %v; want ErrKeyMismatch", s, err)
				}
				return
			}
			var perr *officer.ParseError
			if !errors.As(err, &perr) || perr.Format != "key file" || perr.Field != c.parseErr {
				t.Fatalf("Load = %v, %v; want a key file *ParseError at field %q", s, err, c.parseErr)
			}
			if strings.Contains(err.Error(), string(field("mldsa65_seed"))) {
				t.Fatal("error shows a seed")
			}
		})
	}
	// The unmodified plaintext, re-encrypted, loads: the cases failed for their change.
	path := filepath.Join(t.TempDir(), "k.key")
	writeKeyFile(t, path, plain)
	if s := load(t, path); !s.Public().Equal(pub) {
		t.Fatal("re-encrypted key file gives another key")
	}
}
