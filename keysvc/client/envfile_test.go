package client_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
)

// Explicit values win over the env file, which wins over the environment.
func TestResolveSettings(t *testing.T) {
	t.Setenv(client.EnvAddr, "https://env:1")
	t.Setenv(client.EnvCert, "env.crt")
	t.Setenv(client.EnvKey, "env.key")
	t.Setenv(client.EnvCA, "")
	f := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(f, []byte("export CUSTOS_CLIENT_KEY='file.key'\nCUSTOS_CA=file-ca.pem\nOTHER=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := client.ResolveSettings(client.Settings{Addr: "https://a:1, https://b:2,", TLSFiles: identity.TLSFiles{Cert: "flag.crt"}}, f)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "https://a:1, https://b:2," || s.Cert != "flag.crt" || s.Key != "file.key" || s.CA != "file-ca.pem" {
		t.Errorf("settings %+v", s)
	}
	cfg := s.Config(time.Second)
	if !slices.Equal(cfg.Endpoints, []string{"https://a:1", "https://b:2"}) || cfg.TLSFiles != s.TLSFiles || cfg.Timeout != time.Second {
		t.Errorf("config %+v", cfg)
	}
	if s, err := client.ResolveSettings(client.Settings{}, ""); err != nil || s.Addr != "https://env:1" || s.Key != "env.key" || s.CA != "" {
		t.Errorf("environment only: %+v, %v", s, err)
	}
	if _, err := client.ResolveSettings(client.Settings{}, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing env file was accepted")
	}
}

// An env file's SOFTHSM2_CONF reaches the process's environment when the
// environment has none, so an officer's SoftHSM token opens with it; a value
// already set wins; nothing else in the file is exported (an env file that
// sets LD_PRELOAD or PATH changes neither).
func TestResolveSettingsAppliesProcessEnv(t *testing.T) {
	for _, k := range []string{"SOFTHSM2_CONF", "LD_PRELOAD", "GODEBUG", client.EnvAddr, client.EnvCert, client.EnvKey, client.EnvCA} {
		t.Setenv(k, "")
	}
	path := os.Getenv("PATH")
	f := filepath.Join(t.TempDir(), "alice.env")
	body := "export CUSTOS_ADDR=https://n1:8201\nexport SOFTHSM2_CONF='/srv/officer/softhsm2.conf'\n" +
		"export LD_PRELOAD=/tmp/evil.so\nexport PATH=/tmp/evil\nGODEBUG=tlsmlkem=0\n"
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := client.ResolveSettings(client.Settings{}, f)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != "https://n1:8201" {
		t.Errorf("addr %q", s.Addr)
	}
	if got := os.Getenv("SOFTHSM2_CONF"); got != "/srv/officer/softhsm2.conf" {
		t.Errorf("SOFTHSM2_CONF = %q, want the env file's", got)
	}
	if os.Getenv("LD_PRELOAD") != "" || os.Getenv("GODEBUG") != "" || os.Getenv("PATH") != path || os.Getenv(client.EnvAddr) != "" {
		t.Errorf("the env file exported more than SOFTHSM2_CONF: LD_PRELOAD=%q GODEBUG=%q PATH=%q CUSTOS_ADDR=%q",
			os.Getenv("LD_PRELOAD"), os.Getenv("GODEBUG"), os.Getenv("PATH"), os.Getenv(client.EnvAddr))
	}

	// Already set: the environment wins and ApplyProcessEnv says it set nothing.
	t.Setenv("SOFTHSM2_CONF", "/etc/softhsm/softhsm2.conf")
	if _, err := client.ResolveSettings(client.Settings{}, f); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("SOFTHSM2_CONF"); got != "/etc/softhsm/softhsm2.conf" {
		t.Errorf("SOFTHSM2_CONF = %q, want the environment's", got)
	}
	vars, err := client.ReadEnvFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if set, err := client.ApplyProcessEnv(vars); err != nil || len(set) != 0 {
		t.Errorf("ApplyProcessEnv set %q, %v; want nothing", set, err)
	}
	t.Setenv("SOFTHSM2_CONF", "")
	if set, err := client.ApplyProcessEnv(vars); err != nil || !slices.Equal(set, []string{"SOFTHSM2_CONF"}) {
		t.Errorf("ApplyProcessEnv set %q, %v; want SOFTHSM2_CONF", set, err)
	}
}
