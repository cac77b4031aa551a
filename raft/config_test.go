// Config validation and what it logs.

package raft_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/raft"
)

func TestConfigValidate(t *testing.T) {
	ca := newCA(t, "ca")
	other := newCA(t, "other")
	cert := ca.issue(t, "n1", "node")
	valid := func() raft.Config {
		return raft.Config{ID: "n1", Addr: "127.0.0.1:7000", DataDir: t.TempDir(), Certificate: cert, CAs: ca.pool}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := (raft.Config{ID: "m", Memory: raft.NewMemNetwork()}).Validate(); err != nil {
		t.Fatalf("valid memory config: %v", err)
	}
	noClientAuth := ca.issueFor(t, "n1", "node", x509.ExtKeyUsageServerAuth)
	for _, tc := range []struct {
		name string
		mod  func(*raft.Config)
		want string
	}{
		{"no ID", func(c *raft.Config) { c.ID = "" }, "ID is required"},
		{"no port", func(c *raft.Config) { c.Addr = "127.0.0.1" }, "Addr"},
		{"unspecified host", func(c *raft.Config) { c.Addr = "0.0.0.0:7000" }, "unspecified host"},
		{"port 0 with BindAddr", func(c *raft.Config) { c.Addr = "127.0.0.1:0"; c.BindAddr = ":7000" }, "port 0"},
		{"no DataDir", func(c *raft.Config) { c.DataDir = "" }, "DataDir is required"},
		{"no CAs", func(c *raft.Config) { c.CAs = nil }, "CAs"},
		{"no certificate", func(c *raft.Config) { c.Certificate = tls.Certificate{} }, "no certificate"},
		{"no key", func(c *raft.Config) { c.Certificate.PrivateKey = nil }, "no private key"},
		{"certificate from another CA", func(c *raft.Config) { c.CAs = other.pool }, "does not verify"},
		{"no clientAuth usage", func(c *raft.Config) { c.Certificate = noClientAuth }, "clientAuth"},
		{"host not in certificate", func(c *raft.Config) { c.Addr = "10.1.2.3:7000" }, "does not name Addr host"},
		{"lease above heartbeat", func(c *raft.Config) { c.HeartbeatTimeout = time.Second; c.LeaderLeaseTimeout = 2 * time.Second }, "LeaderLeaseTimeout"},
		{"too many entries per RPC", func(c *raft.Config) { c.MaxAppendEntries = 5000 }, "MaxAppendEntries"},
		{"negative first-bytes timeout", func(c *raft.Config) { c.FirstBytesTimeout = -time.Second }, "FirstBytesTimeout"},
		{"negative handshake cap", func(c *raft.Config) { c.MaxHandshakesPerIP = -1 }, "MaxHandshakesPerIP"},
		{"DataDir with Memory", func(c *raft.Config) { c.Memory = raft.NewMemNetwork() }, "must be empty with Memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error mentioning %q", err, tc.want)
			}
			if _, err := raft.Open(cfg, nil); err == nil {
				t.Fatal("Open accepted it")
			}
		})
	}
	// Every problem is reported at once.
	err := raft.Config{}.Validate()
	for _, want := range []string{"ID is required", "DataDir is required", "CAs", "no certificate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("empty config: %v, want it to mention %q", err, want)
		}
	}
}

func TestConfigLogValue(t *testing.T) {
	ca := newCA(t, "ca")
	cert := ca.issue(t, "n1", "node")
	cfg := raft.Config{ID: "n1", Addr: "127.0.0.1:7000", DataDir: "/var/lib/custos/raft", Certificate: cert, CAs: ca.pool}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("open", "config", cfg)
	out := buf.String()
	for _, want := range []string{`"id":"n1"`, `"addr":"127.0.0.1:7000"`, `"cert_sha256":"`, `"heartbeat_timeout":1000000000`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
	der, _ := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if strings.Contains(out, "PRIVATE") || bytes.Contains(buf.Bytes(), der) {
		t.Errorf("private key material in log: %s", out)
	}
}
