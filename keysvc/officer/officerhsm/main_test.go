package officerhsm_test

// Test helpers: SoftHSM tokens, and key files at a cheap work factor.

import (
	"crypto/rand"
	"io"
	"os"
	"testing"

	"filippo.io/age"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

// testWorkFactor keeps scrypt cheap in tests.
const testWorkFactor = officer.MinWorkFactor

var testPassphrase = []byte("correct horse battery staple")

func randomDigest(t testing.TB) [32]byte {
	t.Helper()
	var d [32]byte
	rand.Read(d[:])
	return d
}

// keygen writes a cheap-to-open key for name into a fresh directory.
func keygen(t testing.TB, c officer.Config) (dir string, pub *officer.PublicKey) {
	t.Helper()
	dir = t.TempDir()
	if c.WorkFactor == 0 {
		c.WorkFactor = testWorkFactor
	}
	pub, err := officerhsm.Keygen(dir, c, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	return dir, pub
}

func load(t testing.TB, path string) *officer.Signer {
	t.Helper()
	s, err := officerhsm.Load(path, testPassphrase)
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
