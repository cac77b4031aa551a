package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

const cliPassphrase = "officer test passphrase"

// cheapKeys makes keygen use the lowest scrypt work factor for this test.
func cheapKeys(t *testing.T) {
	keygenWorkFactor = officer.MinWorkFactor
	t.Cleanup(func() { keygenWorkFactor = 0 })
}

// noTTY makes any attempt to ask on the terminal fail the test, unless the test
// installs its own answers.
func noTTY(t *testing.T) {
	saved := readTTYPassphrase
	readTTYPassphrase = func(prompt string) ([]byte, error) {
		t.Errorf("asked on the terminal: %q", prompt)
		return nil, errNoTTY
	}
	t.Cleanup(func() { readTTYPassphrase = saved })
}

func passphraseFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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

func TestOfficerKeygen(t *testing.T) {
	cheapKeys(t)
	noTTY(t)
	pf := passphraseFile(t, cliPassphrase+"\n")
	for _, alg := range []string{"ecdsa-p256", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			code, out, errOut := runCLI("officer", "keygen", "--out", dir, "--name", "alice", "--classical", alg, "--passphrase-file", pf)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			keyFile, pubFile := filepath.Join(dir, "alice.key"), filepath.Join(dir, "alice.pub")
			pub := signAndVerify(t, keyFile, pubFile)
			if pub.Alg() != officer.Alg(alg) {
				t.Fatalf("classical algorithm %s, want %s", pub.Alg(), alg)
			}
			for _, want := range []string{
				"fingerprint  " + pub.Fingerprint(),
				keyFile, pubFile,
				alg + " + ML-DSA-65 (classical key in the key file)",
				"Next: give alice.pub to the cluster operator",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode: %v %v", fi.Mode(), err)
			}

			// pubkey prints the bundle, byte for byte NAME.pub.
			t.Setenv("ALICE_PASSPHRASE", cliPassphrase)
			code, out, errOut = runCLI("officer", "pubkey", "--key", keyFile, "--passphrase-env", "ALICE_PASSPHRASE")
			if code != 0 {
				t.Fatalf("pubkey: exit %d: %s", code, errOut)
			}
			if pubBytes, _ := os.ReadFile(pubFile); out != string(pubBytes) {
				t.Fatalf("pubkey printed %q, NAME.pub holds %q", out, pubBytes)
			}

			// A second keygen of the same officer into the same directory is refused.
			before, _ := os.ReadFile(keyFile)
			code, _, errOut = runCLI("officer", "keygen", "--out", dir, "--name", "alice", "--passphrase-file", pf)
			if code != 1 || !strings.Contains(errOut, "refusing to overwrite") {
				t.Fatalf("second keygen: exit %d: %s", code, errOut)
			}
			if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
				t.Fatal("second keygen changed the key file")
			}
		})
	}
}

func TestOfficerKeygenRefusals(t *testing.T) {
	cheapKeys(t)
	noTTY(t)
	dir := t.TempDir()
	good := passphraseFile(t, cliPassphrase)
	existing := t.TempDir()
	os.WriteFile(filepath.Join(existing, "alice.pub"), []byte("keep me"), 0o644)
	t.Setenv("EMPTY_PASSPHRASE", "")
	keygen := []string{"officer", "keygen", "--out", dir, "--name", "alice"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"officer"}, 1, "usage: custos officer <command>"},
		{"unknown subcommand", []string{"officer", "keygne"}, 1, `unknown officer command "keygne"`},
		{"no --out", []string{"officer", "keygen", "--name", "alice", "--passphrase-file", good}, 1, "--out DIR and --name NAME are required"},
		{"no --name", []string{"officer", "keygen", "--out", dir, "--passphrase-file", good}, 1, "--out DIR and --name NAME are required"},
		{"bad name", []string{"officer", "keygen", "--out", dir, "--name", "Alice", "--passphrase-file", good}, 1, `officer id "Alice"`},
		{"bad classical", append(keygen, "--classical", "rsa", "--passphrase-file", good), 1, `--classical "rsa"`},
		{"ed25519 on token", append(keygen, "--classical", "ed25519", "--pkcs11-uri", "pkcs11:token=t;object=o?module-path=/m.so&pin-source=env:P", "--passphrase-file", good), 1, "PKCS#11 token holds an ecdsa-p256 key"},
		{"bad uri", append(keygen, "--pkcs11-uri", "pkcs11:token=t;object=o?module-path=/m.so&pin-value=1234", "--passphrase-file", good), 1, "a PIN is never written in the URI"},
		{"passphrase flag", append(keygen, "--passphrase", cliPassphrase), 1, "a passphrase is never taken as a flag value"},
		{"passphrase= flag", append(keygen, "-passphrase="+cliPassphrase), 1, "never taken as a flag value"},
		{"file and env", append(keygen, "--passphrase-file", good, "--passphrase-env", "X"), 1, "only one of --passphrase-file and --passphrase-env"},
		{"missing file", append(keygen, "--passphrase-file", filepath.Join(dir, "nope")), 1, "passphrase file"},
		{"empty file", append(keygen, "--passphrase-file", passphraseFile(t, "\n")), 1, "is empty"},
		{"unset env", append(keygen, "--passphrase-env", "EMPTY_PASSPHRASE"), 1, "EMPTY_PASSPHRASE (--passphrase-env) is unset or empty"},
		{"short passphrase", append(keygen, "--passphrase-file", passphraseFile(t, "short\n")), 1, "at least 12"},
		{"positional", append(keygen, "--passphrase-file", good, "extra"), 1, "unexpected arguments"},
		{"unknown flag", append(keygen, "--force"), 1, "flag provided but not defined"},
		{"existing pub", []string{"officer", "keygen", "--out", existing, "--name", "alice", "--passphrase-file", good}, 1, "refusing to overwrite"},
		{"missing out dir", []string{"officer", "keygen", "--out", filepath.Join(dir, "nope"), "--name", "alice", "--passphrase-file", good}, 1, "no such file"},
		{"pubkey without --key", []string{"officer", "pubkey", "--passphrase-file", good}, 1, "--key FILE is required"},
		{"pubkey missing file", []string{"officer", "pubkey", "--key", filepath.Join(dir, "nope.key"), "--passphrase-file", good}, 1, "no such file"},
		{"pubkey passphrase flag", []string{"officer", "pubkey", "--key", "x", "--passphrase", "x"}, 1, "never taken as a flag value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q (stdout %q)", code, errOut, c.code, c.want, out)
			}
			if strings.Contains(errOut, cliPassphrase) || strings.Contains(out, cliPassphrase) {
				t.Fatal("the passphrase was printed")
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("refused commands wrote %d files", len(entries))
	}
	if b, _ := os.ReadFile(filepath.Join(existing, "alice.pub")); string(b) != "keep me" {
		t.Fatal("existing file was changed")
	}
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

func TestOfficerKeygenPKCS11(t *testing.T) {
	cheapKeys(t)
	noTTY(t)
	cfg := hsmtest.SoftHSM(t, "officer-alice")[0]
	uri := fmt.Sprintf("pkcs11:token=%s;object=custos-officer?module-path=%s&pin-source=file:%s", cfg.TokenLabel, cfg.Module, cfg.PINFile)
	dir := t.TempDir()
	pf := passphraseFile(t, cliPassphrase)
	code, out, errOut := runCLI("officer", "keygen", "--out", dir, "--name", "alice", "--pkcs11-uri", uri, "--passphrase-file", pf)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := fmt.Sprintf(`classical key on PKCS#11 token %q, object "custos-officer"`, cfg.TokenLabel); !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
	signAndVerify(t, filepath.Join(dir, "alice.key"), filepath.Join(dir, "alice.pub"))
	if code, out, errOut := runCLI("officer", "pubkey", "--key", filepath.Join(dir, "alice.key"), "--passphrase-file", pf); code != 0 || !strings.HasPrefix(out, `{"format":"custos-officer-public-key/v1","officer":"alice","classical":"ecdsa-p256"`) {
		t.Fatalf("pubkey: exit %d: %s %s", code, out, errOut)
	}
	// The label is taken now: a second officer key on the same object is refused.
	code, _, errOut = runCLI("officer", "keygen", "--out", t.TempDir(), "--name", "alice2", "--pkcs11-uri", uri, "--passphrase-file", pf)
	if code != 1 || !strings.Contains(errOut, `already holds a key labelled "custos-officer"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestUsageListsOfficer(t *testing.T) {
	_, _, errOut := runCLI("help")
	if !strings.Contains(errOut, "officer") {
		t.Fatalf("usage does not list officer:\n%s", errOut)
	}
}
