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
		API:            APIListener{Listen: "127.0.0.1:8201"}, Raft: RaftListener{Listen: "127.0.0.1:8301"},
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

// The API's timeouts and per-address cap default when unset and keep what is
// written; the raft listener's bounds stay zero (the raft package's defaults).
func TestConnectionLimits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node.toml")
	if err := valid().Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	a := got.API
	if a.ReadHeaderTimeout.Duration != 10*time.Second || a.ReadTimeout.Duration != time.Minute ||
		a.WriteTimeout.Duration != 30*time.Second || a.IdleTimeout.Duration != 2*time.Minute || a.MaxConnsPerIP != 512 {
		t.Errorf("API defaults: %+v", a)
	}
	if got.Raft.FirstBytesTimeout.Duration != 0 || got.Raft.MaxHandshakesPerIP != 0 {
		t.Errorf("raft listener bounds set by Load: %+v", got.Raft)
	}

	b, _ := os.ReadFile(p)
	text := strings.Replace(string(b), "[api]\n", "[api]\n  write_timeout = \"5s\"\n  max_conns_per_ip = 20\n", 1)
	text = strings.Replace(text, "[raft]\n", "[raft]\n  first_bytes_timeout = \"250ms\"\n  max_handshakes_per_ip = 8\n", 1)
	p2 := filepath.Join(t.TempDir(), "set.toml")
	os.WriteFile(p2, []byte(text), 0o600)
	got, err = Load(p2)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got.API.WriteTimeout.Duration != 5*time.Second || got.API.MaxConnsPerIP != 20 || got.API.IdleTimeout.Duration != 2*time.Minute ||
		got.Raft.FirstBytesTimeout.Duration != 250*time.Millisecond || got.Raft.MaxHandshakesPerIP != 8 {
		t.Errorf("loaded %+v %+v", got.API, got.Raft)
	}

	c := valid()
	c.API.WriteTimeout.Duration, c.Raft.MaxHandshakesPerIP = -time.Second, -1
	err = c.Validate()
	for _, want := range []string{"api timeouts and max_conns_per_ip", "raft.max_handshakes_per_ip"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
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

func TestHealthAddr(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"", ""},
		{"127.0.0.1:8300", ""},
		{"[::1]:8300", ""},
		{"localhost:0", ""},
		{"127.0.0.1", "want host:port"},
		{"127.0.0.1:http", `port "http" is not a number`},
		{"127.0.0.1:70000", `port "70000" is not a number`},
		{"127.0.0.1:+80", `port "+80" is not a number`},
		{"a b:80", "is not an IP address or host name"},
		{"127.0.0.1:8201", "is also api.listen"},
		{"127.0.0.1:8301", "is also raft.listen"},
	} {
		c := valid()
		c.setDefaults()
		c.Health.Addr = tc.addr
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), "health.addr") || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("health.addr %q: error %v, want %q", tc.addr, err, tc.want)
		}
	}
}

func TestHealthAddrRoundTrip(t *testing.T) {
	dir := t.TempDir()
	off := valid()
	p := filepath.Join(dir, "off.toml")
	if err := off.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil || got.Health.Addr != "" {
		t.Fatalf("unset health: %+v, %v", got, err)
	}
	on := valid()
	on.Health.Addr = "127.0.0.1:8300"
	p = filepath.Join(dir, "on.toml")
	if err := on.Write(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "[health]\n  addr = \"127.0.0.1:8300\"") && !strings.Contains(string(b), "[health]\naddr = \"127.0.0.1:8300\"") {
		t.Errorf("written config lacks the [health] table:\n%s", b)
	}
	got, err = Load(p)
	if err != nil || got.Health.Addr != "127.0.0.1:8300" {
		t.Fatalf("health: %+v, %v", got.Health, err)
	}
	os.WriteFile(p, append(b, []byte("\n[health]\nadr = \"x\"\n")...), 0o600)
	if _, err := Load(p); err == nil {
		t.Error("a duplicate/misspelled [health] table was accepted")
	}
}
