// Officer keygen with passphrases asked on the terminal, which the test
// answers in process; the other keygen tests are scripts in testdata/script.

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

const cliPassphrase = "officer test passphrase"

// cheapKeys makes keygen use the lowest scrypt work factor for this test.
func cheapKeys(t *testing.T) {
	keygenWorkFactor = officer.MinWorkFactor
	t.Cleanup(func() { keygenWorkFactor = 0 })
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), &out, &errOut, args)
	return code, out.String(), errOut.String()
}

// signAndVerify loads the key file, signs, and verifies with the bundle in pubFile.
func signAndVerify(t *testing.T, keyFile, pubFile string) *officer.PublicKey {
	t.Helper()
	s, err := officerhsm.Load(keyFile, []byte(cliPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := officer.ParsePublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(s.Public()) {
		t.Fatal("key file and NAME.pub hold different keys")
	}
	var d [32]byte
	rand.Read(d[:])
	sig, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(d, sig); err != nil {
		t.Fatal(err)
	}
	return pub
}

// answers installs terminal answers and returns the prompts asked.
func answers(t *testing.T, replies ...string) *[]string {
	var prompts []string
	saved := readTTYPassphrase
	readTTYPassphrase = func(prompt string) ([]byte, error) {
		prompts = append(prompts, prompt)
		if len(replies) == 0 {
			return nil, errors.New("test: no more answers")
		}
		r := replies[0]
		replies = replies[1:]
		return []byte(r), nil
	}
	t.Cleanup(func() { readTTYPassphrase = saved })
	return &prompts
}

func TestOfficerKeygenTerminal(t *testing.T) {
	cheapKeys(t)
	dir := t.TempDir()

	prompts := answers(t, cliPassphrase, cliPassphrase)
	if code, _, errOut := runCLI("officer", "keygen", "--out", dir, "--name", "alice"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if len(*prompts) != 2 || !strings.Contains((*prompts)[0], "officer alice") || !strings.Contains((*prompts)[1], "confirm") {
		t.Fatalf("prompts %q, want the passphrase and its confirmation", *prompts)
	}
	signAndVerify(t, filepath.Join(dir, "alice.key"), filepath.Join(dir, "alice.pub"))

	// pubkey asks once, with no confirmation.
	prompts = answers(t, cliPassphrase)
	if code, out, errOut := runCLI("officer", "pubkey", "--key", filepath.Join(dir, "alice.key")); code != 0 || !strings.HasPrefix(out, `{"format":"custos-officer-public-key/v1"`) {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if len(*prompts) != 1 {
		t.Fatalf("pubkey asked %d times", len(*prompts))
	}
	// A wrong passphrase is named as such.
	answers(t, "not the passphrase")
	if code, _, errOut := runCLI("officer", "pubkey", "--key", filepath.Join(dir, "alice.key")); code != 1 || !strings.Contains(errOut, "wrong passphrase") {
		t.Fatalf("exit %d: %s", code, errOut)
	}

	for name, c := range map[string]struct {
		replies []string
		want    string
	}{
		"mismatch": {[]string{cliPassphrase, cliPassphrase + "!"}, "the two passphrases differ; nothing was written"},
		"empty":    {[]string{""}, "empty passphrase"},
		"no tty":   {nil, "test: no more answers"},
	} {
		t.Run(name, func(t *testing.T) {
			answers(t, c.replies...)
			dir := t.TempDir()
			if code, _, errOut := runCLI("officer", "keygen", "--out", dir, "--name", "bob"); code != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatal("files written")
			}
		})
	}
	// Without a terminal the message says what to use instead.
	readTTYPassphrase = func(string) ([]byte, error) { return nil, errNoTTY }
	if code, _, errOut := runCLI("officer", "keygen", "--out", t.TempDir(), "--name", "bob"); code != 1 || !strings.Contains(errOut, "use --passphrase-file FILE or --passphrase-env NAME") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
