package softhsm_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm/softhsm"
)

func setup(t *testing.T) *softhsm.Env {
	t.Helper()
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("softhsm2-util is required (CUSTOS_REQUIRE_SOFTHSM is set) but not on PATH")
		}
		t.Skip("softhsm2-util not on PATH")
	}
	env, err := softhsm.Setup(filepath.Join(t.TempDir(), "hsm"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestSetupAndInitToken(t *testing.T) {
	t.Setenv("SOFTHSM2_CONF", "/nonexistent/unchanged.conf")
	env := setup(t)
	conf, err := os.ReadFile(env.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "directories.tokendir = "+filepath.Join(env.Dir, "tokens")+"\n") {
		t.Fatalf("conf does not point at %s/tokens:\n%s", env.Dir, conf)
	}

	labels := []string{"node-1", "node-2"}
	for _, label := range labels {
		cfg, err := env.InitToken(label)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Module != env.Module || cfg.TokenLabel != label || cfg.PINEnv != "" || cfg.Slot != nil {
			t.Fatalf("config %+v", cfg)
		}
		fi, err := os.Stat(cfg.PINFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("PIN file mode %v, want 0600", fi.Mode().Perm())
		}
		pin, _ := os.ReadFile(cfg.PINFile)
		if p := strings.TrimSuffix(string(pin), "\n"); len(p) < 16 || strings.ContainsAny(p, " \n") {
			t.Errorf("PIN %d bytes: want a long random PIN and one trailing newline", len(pin))
		}
		if again, err := env.Config(label); err != nil || again != cfg {
			t.Errorf("Config(%q) = %+v, %v; want %+v", label, again, err, cfg)
		}
	}
	if _, err := env.InitToken("node-1"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second InitToken of a label: %v, want fs.ErrExist", err)
	}
	if _, err := env.Config("node-9"); err == nil {
		t.Error("Config of a token never made succeeded")
	}
	for _, bad := range []string{"", "-x", "a/b", "../x", strings.Repeat("x", 33), "sp ace"} {
		if _, err := env.InitToken(bad); err == nil {
			t.Errorf("InitToken(%q) succeeded", bad)
		}
	}

	// softhsm2-util, run with the Env's configuration, sees the tokens; this process's
	// environment was left alone.
	if got := os.Getenv("SOFTHSM2_CONF"); got != "/nonexistent/unchanged.conf" {
		t.Fatalf("InitToken changed SOFTHSM2_CONF to %q", got)
	}
	cmd := exec.Command("softhsm2-util", "--show-slots")
	cmd.Env = append(os.Environ(), env.Var())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, label := range labels {
		if !strings.Contains(string(out), "Label:            "+label+" ") {
			t.Errorf("softhsm2-util does not list token %q:\n%s", label, out)
		}
	}

	// Setup again on the same directory keeps the tokens.
	env2, err := softhsm.Setup(env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env2.Config("node-2"); err != nil {
		t.Fatal(err)
	}

	if err := env.Activate(); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("SOFTHSM2_CONF"); got != env.ConfPath {
		t.Fatalf("after Activate SOFTHSM2_CONF = %q", got)
	}
}

func TestFindModule(t *testing.T) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil && os.Getenv("CUSTOS_REQUIRE_SOFTHSM") == "" {
		t.Skip("softhsm2-util not on PATH")
	}
	m, err := softhsm.FindModule()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUSTOS_SOFTHSM_MODULE", "/nonexistent/libsofthsm2.so")
	if _, err := softhsm.FindModule(); err == nil {
		t.Error("FindModule accepted a missing CUSTOS_SOFTHSM_MODULE")
	}
	t.Setenv("CUSTOS_SOFTHSM_MODULE", m)
	if got, err := softhsm.FindModule(); err != nil || got != m {
		t.Errorf("FindModule with override = %q, %v", got, err)
	}
}
