package hsmtest

// Real SoftHSM tokens for integration tests.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/hsm/softhsm"
)

// RequireEnv is the environment variable that turns a missing SoftHSM from a skip into
// a failure; `make test` sets it to 1, so SoftHSM tests never silently skip in CI.
const RequireEnv = "CUSTOS_REQUIRE_SOFTHSM"

// shared is the one SoftHSM directory of this test process. SoftHSM reads SOFTHSM2_CONF
// when the library is initialised, and the library stays initialised while any token is
// open, so every token of the process must live under one configuration.
var shared struct {
	once sync.Once
	env  *softhsm.Env
	err  error
	n    atomic.Int64 // makes token labels unique within the process
}

// SoftHSM initialises one new SoftHSM token per label and returns the pkcs11.Config of
// each, with the PIN in a 0600 file. Token labels get a suffix ("node-1" becomes
// "node-1-7") so that every call, in any test of the process, has fresh, empty tokens;
// the label with its suffix must fit in 32 bytes.
//
// The first call creates a directory custos-softhsm-<pid>-* in os.TempDir and sets
// SOFTHSM2_CONF for the whole process (before any token is opened, which loads the
// library); every later call adds tokens there. Main removes the directory after the
// tests; without it, the directory is left behind, and removed by the first SoftHSM
// call of a later test process once this one has exited. SoftHSM sees new tokens only
// when initialised, so each new token makes the module rescan (see softhsm.InitToken):
// Tokens open elsewhere in the process reconnect transparently on their next call.
//
// Without softhsm2-util on PATH (or without cgo) SoftHSM skips the test, unless
// CUSTOS_REQUIRE_SOFTHSM is set, when it fails it.
func SoftHSM(t testing.TB, labels ...string) []pkcs11.Config {
	t.Helper()
	if !cgoEnabled {
		unavailable(t, "this test binary was built without cgo")
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		unavailable(t, "softhsm2-util is not on PATH (apt-get install softhsm2)")
	}
	env, err := sharedEnv()
	if err != nil {
		t.Fatalf("hsmtest: SoftHSM setup: %v", err)
	}
	cfgs := make([]pkcs11.Config, len(labels))
	for i, label := range labels {
		unique := fmt.Sprintf("%s-%d", label, shared.n.Add(1))
		if cfgs[i], err = env.InitToken(unique); err != nil {
			t.Fatalf("hsmtest: %v", err)
		}
	}
	return cfgs
}

// OpenSoftHSM opens a fresh SoftHSM token (see SoftHSM) and closes it when the test ends.
func OpenSoftHSM(t testing.TB, label string) hsm.Token {
	t.Helper()
	tok, err := pkcs11.Open(SoftHSM(t, label)[0])
	if err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("hsmtest: SoftHSM is required (%s is set) but %s", RequireEnv, why)
	}
	t.Skipf("hsmtest: skipping SoftHSM test: %s (set %s=1 to make this a failure)", why, RequireEnv)
}

const dirPrefix = "custos-softhsm-"

func sharedEnv() (*softhsm.Env, error) {
	shared.once.Do(func() {
		sweep()
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err != nil {
			shared.err = err
			return
		}
		env, err := softhsm.Setup(dir)
		if err == nil {
			err = env.Activate()
		}
		shared.env, shared.err = env, err
	})
	return shared.env, shared.err
}

// sweep removes the SoftHSM directories of test processes that have exited without Main.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*-*"))
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), dirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone) {
			os.RemoveAll(dir)
		}
	}
}

// Main runs the tests and then removes the SoftHSM directory SoftHSM created, if any.
// Use it as a package's TestMain:
//
//	func TestMain(m *testing.M) { hsmtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		os.RemoveAll(shared.env.Dir)
	}
	os.Exit(code)
}
