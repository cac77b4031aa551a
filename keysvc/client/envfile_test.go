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
