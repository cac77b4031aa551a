// Package softhsm creates SoftHSM v2 tokens in a directory, for tests, demos and
// development clusters. It is not for production keys: the PINs are random but written
// to files beside the tokens.
//
//	env, err := softhsm.Setup(dir) // writes dir/softhsm2.conf, tokens go in dir/tokens
//	err = env.Activate()           // SOFTHSM2_CONF for this process, before any pkcs11.Open
//	cfg, err := env.InitToken("node-1")
//	tok, err := pkcs11.Open(cfg)
//
// SoftHSM reads SOFTHSM2_CONF when the library is initialised, and the library stays
// initialised while any token of it is open; so a process should use one Env only.
// Child processes get theirs through Env.Var in their environment.
package softhsm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/custos-eu/custos/hsm/pkcs11"
)

// Env is a directory of SoftHSM tokens and the configuration that points at it.
type Env struct {
	Dir      string // root: softhsm2.conf, tokens/ and one <label>.pin per token
	ConfPath string // Dir/softhsm2.conf
	Module   string // the SoftHSM PKCS#11 library
}

// Setup creates dir (0700) with a softhsm2.conf whose token directory is dir/tokens.
// It changes nothing outside dir, and may be called again on the same dir to reuse its
// tokens.
func Setup(dir string) (*Env, error) {
	module, err := FindModule()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if strings.ContainsAny(dir, "\n\r") {
		return nil, fmt.Errorf("softhsm: directory name %q contains a newline", dir)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	conf := fmt.Sprintf(`# Written by custos hsm/softhsm.
directories.tokendir = %s
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
`, tokens)
	e := &Env{Dir: dir, ConfPath: filepath.Join(dir, "softhsm2.conf"), Module: module}
	if err := os.WriteFile(e.ConfPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	return e, nil
}

// Var is "SOFTHSM2_CONF=<ConfPath>", for the environment of a child process.
func (e *Env) Var() string { return "SOFTHSM2_CONF=" + e.ConfPath }

// Activate points this process's SoftHSM at e by setting SOFTHSM2_CONF. The variable is
// process-global and SoftHSM reads it when the library is initialised, so call Activate
// before the first pkcs11.Open of a SoftHSM token; a change made while a token is open has
// no effect until every token of the module has been closed.
func (e *Env) Activate() error {
	return os.Setenv("SOFTHSM2_CONF", e.ConfPath)
}

// labelRE is what InitToken accepts: a token label (at most 32 bytes) that is also a
// safe file name for the PIN file.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// InitToken initialises a new token labelled label in a free slot, with a random user
// PIN written to Dir/<label>.pin (mode 0600), and returns the pkcs11.Config to open it.
// The SO PIN is random and discarded. If the token exists already (its PIN file does),
// the error wraps fs.ErrExist; use Config to open it.
//
// SoftHSM finds tokens that another process (softhsm2-util) made only when it is
// initialised, so if this process has the module loaded, InitToken calls pkcs11.Rescan:
// the new token can then be opened, and Tokens already open reconnect on their next call.
//
// softhsm2-util takes the PINs as arguments, so they are visible to local users in the
// process list while it runs, for a few milliseconds.
func (e *Env) InitToken(label string) (pkcs11.Config, error) {
	if !labelRE.MatchString(label) {
		return pkcs11.Config{}, fmt.Errorf("softhsm: token label %q: want 1 to 32 of A-Z a-z 0-9 . _ -, starting with a letter or digit", label)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return pkcs11.Config{}, fmt.Errorf("softhsm: %w", err)
	}
	pin, soPIN := randomPIN(), randomPIN()
	pinFile := e.pinFile(label)
	f, err := os.OpenFile(pinFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return pkcs11.Config{}, fmt.Errorf("softhsm: token %q: %w (PIN file %s)", label, err, pinFile)
	}
	if err != nil {
		return pkcs11.Config{}, fmt.Errorf("softhsm: %w", err)
	}
	_, err = f.WriteString(pin + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(pinFile)
		return pkcs11.Config{}, fmt.Errorf("softhsm: %w", err)
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", pin)
	cmd.Env = append(withoutVar(os.Environ(), "SOFTHSM2_CONF"), e.Var())
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(pinFile)
		// The output names slots and labels, not PINs; the command line is left out.
		return pkcs11.Config{}, fmt.Errorf("softhsm: init token %q: %v: %s", label, err, strings.TrimSpace(string(out)))
	}
	// SoftHSM reads its token directory only when initialised.
	if err := pkcs11.Rescan(e.Module); err != nil {
		return pkcs11.Config{}, fmt.Errorf("softhsm: %w", err)
	}
	return e.config(label), nil
}

// Config returns the pkcs11.Config of a token made earlier by InitToken in this Env.
func (e *Env) Config(label string) (pkcs11.Config, error) {
	if !labelRE.MatchString(label) {
		return pkcs11.Config{}, fmt.Errorf("softhsm: bad token label %q", label)
	}
	if _, err := os.Stat(e.pinFile(label)); err != nil {
		return pkcs11.Config{}, fmt.Errorf("softhsm: token %q: %w", label, err)
	}
	return e.config(label), nil
}

func (e *Env) config(label string) pkcs11.Config {
	return pkcs11.Config{Module: e.Module, TokenLabel: label, PINFile: e.pinFile(label)}
}

func (e *Env) pinFile(label string) string { return filepath.Join(e.Dir, label+".pin") }

func randomPIN() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// FindModule returns the path of the SoftHSM PKCS#11 library: $CUSTOS_SOFTHSM_MODULE if
// set, else the first that exists of the usual Debian/Ubuntu (multiarch), Fedora, Alpine
// and Homebrew locations.
func FindModule() (string, error) {
	if p := os.Getenv("CUSTOS_SOFTHSM_MODULE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("softhsm: CUSTOS_SOFTHSM_MODULE: %w", err)
		}
		return p, nil
	}
	triplet := map[string]string{
		"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
		"arm": "arm-linux-gnueabihf", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
		"riscv64": "riscv64-linux-gnu",
	}[runtime.GOARCH]
	candidates := []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/" + triplet + "/softhsm/libsofthsm2.so",
		"/usr/lib64/pkcs11/libsofthsm2.so",
		"/usr/lib64/softhsm/libsofthsm2.so",
		"/usr/lib/pkcs11/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
		"/opt/homebrew/lib/softhsm/libsofthsm2.so",
		"/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so",
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("softhsm: libsofthsm2.so not found (install softhsm2, or set CUSTOS_SOFTHSM_MODULE)")
}
