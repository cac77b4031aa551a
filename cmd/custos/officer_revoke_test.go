package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/officer"
)

// `custos officer propose identity.revoke`: a revocation by identity and
// one by fingerprint that the API enforces at once, on clients already
// connected. Its flag checks are the script officer_revoke_flags.
func TestOfficerRevokeCLI(t *testing.T) {
	clearEnv(t)
	pki := httpapitest.NewPKI(t, "test")
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{CAs: pki.Pool()})
	srv := pki.Serve(t, "n1", "DE", httpapi.New(c.Node("n1"), httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	dir := t.TempDir()
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeEnv := func(name string, files identity.TLSFiles, extra map[string]string) string {
		vars := map[string]string{envAddr: srv.URL, envCA: files.CA, envCert: files.Cert, envKey: files.Key}
		for k, v := range extra {
			vars[k] = v
		}
		return writeEnvFile(t, filepath.Join(dir, name+".env"), vars)
	}
	envs := map[string]string{}
	var pubs []string
	for _, name := range []string{"alice", "bob"} {
		if _, err := officer.Keygen(dir, officer.Config{Name: name, WorkFactor: officer.MinWorkFactor}, []byte("correct horse battery staple")); err != nil {
			t.Fatal(err)
		}
		key, pub := officer.KeyFiles(dir, name)
		pubs = append(pubs, pub)
		envs[name] = writeEnv(name, pki.Issue(t, identity.RoleOfficer, name, "DE"), map[string]string{envOfficerKey: key, envOfficerPassphrase: passFile})
	}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), &out, &errOut, args); code != wantCode {
			t.Fatalf("custos %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	cli(0, "operator", "init", "--env", writeEnv("ops", pki.Issue(t, identity.RoleOperator, "ops", "DE"), nil), "--officers", strings.Join(pubs, ","), "--quorum", "2")

	sdk := func(files identity.TLSFiles) *client.Client {
		cl, err := client.New(client.Config{Endpoints: []string{srv.URL}, TLSFiles: files, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	agent1, agent2 := pki.Issue(t, identity.RoleAgent, "agent-1", "FR"), pki.Issue(t, identity.RoleAgent, "agent-2", "FR")
	a1, a2 := sdk(agent1), sdk(agent2)
	ctx := context.Background()
	for _, cl := range []*client.Client{a1, a2} {
		if _, err := cl.Health(ctx); err != nil {
			t.Fatal(err)
		}
	}
	approve := func(out string) {
		t.Helper()
		id := strings.Fields(strings.TrimPrefix(out[strings.Index(out, "Proposed "):], "Proposed "))[0]
		if out := cli(0, "officer", "approve", id, "--env", envs["bob"]); !strings.Contains(out, "status     executed") {
			t.Fatalf("approve: %s", out)
		}
	}
	out := cli(0, "officer", "propose", "identity.revoke", "--identity", "custos://test/agent/agent-1?region=DE", "--reason", "host decommissioned", "--env", envs["alice"])
	if !strings.Contains(out, `Revoke every certificate of agent "agent-1", in any region (reason: "host decommissioned")`) {
		t.Errorf("propose: %s", out)
	}
	approve(out)
	if _, err := a1.Health(ctx); !client.IsCode(err, client.CodeCertRevoked) || !strings.Contains(err.Error(), "host decommissioned") {
		t.Fatalf("revoked agent: %v, want certificate_revoked", err)
	}
	if _, err := a2.Health(ctx); err != nil {
		t.Fatalf("other agent: %v", err)
	}

	fp := fingerprintOf(t, agent2.Cert)
	out = cli(0, "officer", "propose", "identity.revoke", "--fingerprint", strings.ToUpper(fp[:7])+fp[7:], "--reason", "key copied", "--env", envs["alice"])
	if !strings.Contains(out, "Revoke the certificate with fingerprint "+fp) {
		t.Errorf("propose: %s", out)
	}
	approve(out)
	if _, err := a2.Health(ctx); !client.IsCode(err, client.CodeCertRevoked) {
		t.Fatalf("revoked certificate: %v, want certificate_revoked", err)
	}
	if _, err := sdk(pki.Issue(t, identity.RoleAgent, "agent-2", "FR")).Health(ctx); err != nil {
		t.Fatalf("agent-2's new certificate: %v", err)
	}
}

func fingerprintOf(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return identity.Fingerprint(cert)
}
