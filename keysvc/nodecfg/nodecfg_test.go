package nodecfg

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func valid() *Config {
	return &Config{
		NodeID: "node-1", Region: "FR", Cluster: "dev", DataDir: "/d", Bootstrap: true,
		AllowedRegions: []string{"FR", "DE"},
		API:            Listener{Listen: "127.0.0.1:8201"}, Raft: Listener{Listen: "127.0.0.1:8301"},
		HSM: HSM{Module: "/lib.so", TokenLabel: "node-1", PINFile: "/pin"},
		TLS: TLS{Cert: "c", CA: "ca"},
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node.toml")
	c := valid()
	c.GroupCommit.MaxDelay.Duration = 5 * time.Millisecond
	if err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != "node-1" || got.API.Advertise != "127.0.0.1:8201" || got.GroupCommit.MaxDelay.Duration != 5*time.Millisecond || got.GroupCommit.MaxEntries != 256 {
		t.Fatalf("loaded %+v", got)
	}
}

func TestUnknownKeyRejected(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node.toml")
	if err := valid().Write(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append([]byte("nodeid = \"typo\"\n"), b...), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), `unknown key "nodeid"`) {
		t.Fatalf("got %v", err)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := valid()
	c.NodeID, c.HSM.PINFile, c.Log.Level, c.Log.Format = "", "", "loud", "json"
	c.Join = []string{"https://x"}
	err := c.Validate()
	for _, want := range []string{"node_id is required", "pin_file or hsm.pin_env", "exclusive", `log.level "loud"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// A configuration of the previous release names the node's key file: it is
// refused with the way out, not ignored and not an unknown key.
func TestTLSKeyFileRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node.toml")
	if err := valid().Write(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if regexp.MustCompile(`(?m)^\s*key\s*=`).Match(b) {
		t.Fatalf("Write wrote a key setting:\n%s", b)
	}
	old := strings.Replace(string(b), "[tls]\n", "[tls]\n  key = \"/etc/custos/key.pem\"\n", 1)
	if old == string(b) {
		t.Fatalf("no [tls] table in\n%s", b)
	}
	os.WriteFile(p, []byte(old), 0o600)
	_, err := Load(p)
	if !errors.Is(err, ErrTLSKeyFile) {
		t.Fatalf("got %v, want ErrTLSKeyFile", err)
	}
	for _, want := range []string{p, "remove tls.key", "-csr", "cluster CA sign it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// Rate limits that cannot work are refused at load, with the key named.
func TestRateLimitsValidated(t *testing.T) {
	c := valid()
	c.setDefaults()
	c.RateLimits.KeyOp = RateLimit{Rate: math.NaN()}
	c.RateLimits.Refused = RateLimit{Rate: 1, Burst: -1}
	err := c.Validate()
	for _, want := range []string{"rate_limits.keyop", "rate_limits.refused"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	c.RateLimits = RateLimits{Read: RateLimit{Rate: -1}, DenialFoldWindow: Duration{-time.Second}}
	if err := c.Validate(); err != nil {
		t.Errorf("no limit and no folding refused: %v", err)
	}
}
