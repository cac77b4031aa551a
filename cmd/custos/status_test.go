package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// statusCluster serves a leader n1 (a fake node behind the real API) with
// 4 log entries, and lists n2 (unreachable) and n3 (no API yet) as members.
// It returns the env file `custos dev up` would write for it in dir. The
// status scripts start it with `cluster fake DIR`.
func statusCluster(t testing.TB, dir string) (fake *httpapitest.Fake, envFile string) {
	t.Helper()
	pki := httpapitest.NewPKI(t, "dev")
	fake = httpapitest.NewFake("dev", "node-1", "FR", "")
	srv := pki.Serve(t, "node-1", "FR", httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	fake.SetAPIAddr(srv.URL)
	fake.AddMember(keysvc.Member{ID: "node-2", Region: "DE", RaftAddr: "127.0.0.1:7002", APIAddr: "https://127.0.0.1:1", Voter: true, Registered: true})
	fake.AddMember(keysvc.Member{ID: "node-3", Region: "NL", RaftAddr: "127.0.0.1:7003", Registered: true})
	for i := range 4 {
		if _, err := fake.Append(context.Background(), ledger.Entry{Type: "test", Actor: ledger.Actor{Identity: fmt.Sprint(i)}, Outcome: ledger.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	files := pki.Issue(t, identity.RoleAgent, "dev-agent", "FR")
	envFile = writeEnvFile(t, filepath.Join(dir, "env"),
		map[string]string{envAddr: "https://127.0.0.1:1," + srv.URL, envCA: files.CA, envCert: files.Cert, envKey: files.Key})
	return fake, envFile
}

// writeEnvFile writes vars as the shell exports the CLI's --env reads
// (as `custos dev up` writes DIR/env), 0600, and returns path.
func writeEnvFile(t testing.TB, path string, vars map[string]string) string {
	t.Helper()
	var b strings.Builder
	for k, v := range vars {
		fmt.Fprintf(&b, "export %s=%q\n", k, v)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func clearEnv(t *testing.T) {
	for _, k := range []string{envAddr, envCert, envKey, envCA} {
		t.Setenv(k, "")
	}
	// The CLI keeps the log size it has seen in the user's cache directory.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
}

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env")
	os.WriteFile(p, []byte("# comment\n\nexport A=\"x y\\\"z\"\nB='s p'\nexport C=bare\n"), 0o600)
	vars, err := client.ReadEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if vars["A"] != `x y"z` || vars["B"] != "s p" || vars["C"] != "bare" || len(vars) != 3 {
		t.Errorf("vars %q", vars)
	}
}

// expiringCluster serves a fake leader node-1 whose CA is valid for caDays
// and whose node certificate is valid for nodeDays, both made by identity
// as the cluster CA makes them, and returns the env file of an agent whose
// certificate is valid for clientDays (each cut to the CA's).
func expiringCluster(t *testing.T, caDays, nodeDays, clientDays int) string {
	t.Helper()
	day := 24 * time.Hour
	dir := t.TempDir()
	ca, err := identity.NewCA("dev", time.Duration(caDays)*day)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.NewCSR(key, identity.Identity{Cluster: "dev", Name: "node-1", Role: identity.RoleNode, Region: "FR"},
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	nodePEM, err := ca.IssueCSR(csr, identity.IssueOptions{Validity: time.Duration(nodeDays) * day})
	if err != nil {
		t.Fatal(err)
	}
	nodeFile := filepath.Join(dir, "node.pem")
	os.WriteFile(nodeFile, nodePEM, 0o644)
	srvTLS, err := identity.ServerConfig(identity.TLSFiles{Cert: nodeFile, CA: caFile, Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	fake := httpapitest.NewFake("dev", "node-1", "FR", "")
	srv := httptest.NewUnstartedServer(httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = srvTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)
	fake.SetAPIAddr(srv.URL)
	if _, err := fake.Append(context.Background(), ledger.Entry{Type: "test", Actor: ledger.Actor{Identity: "x"}, Outcome: ledger.OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(identity.Identity{Cluster: "dev", Name: "ops", Role: identity.RoleOperator, Region: "FR"},
		identity.IssueOptions{Validity: time.Duration(clientDays) * day})
	if err != nil {
		t.Fatal(err)
	}
	cert, ckey := filepath.Join(dir, "ops.pem"), filepath.Join(dir, "ops.key")
	if err := identity.WriteKeyPair(cert, ckey, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return writeEnvFile(t, filepath.Join(dir, "env"), map[string]string{envAddr: srv.URL, envCA: caFile, envCert: cert, envKey: ckey})
}

// custos status warns of each certificate with under 30 days left: the
// node's as it presents it, the CA it chains to, and the CLI's own; the
// cluster still serves, so it exits 0. Once past expiry it says EXPIRED.
func TestStatusWarnsOfExpiringCertificates(t *testing.T) {
	clearEnv(t)
	env := expiringCluster(t, 20, 10, 15)
	var out bytes.Buffer
	if err := runStatusCmd(context.Background(), &out, []string{"--env", env}); err != nil {
		t.Fatalf("status: %v\n%s", err, out.String())
	}
	for _, re := range []string{
		`(?m)^WARNING: node-1's certificate expires in 9 days \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): renew it$`,
		`(?m)^WARNING: the cluster CA \(as the members' certificates chain to it\) expires in 19 days `,
		`(?m)^WARNING: your client certificate \(.*ops\.pem\) expires in 14 days `,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("status output lacks %s:\n%s", re, out.String())
		}
	}
	if strings.Count(out.String(), "WARNING") != 3 || strings.Contains(out.String(), "Certificates: none") {
		t.Errorf("want exactly three warnings (the CA file is the CA the node chains to: not twice):\n%s", out.String())
	}

	// 11 days on: the node's certificate has expired, the others are close.
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Now().Add(11 * 24 * time.Hour) }
	out.Reset()
	if err := runStatusCmd(context.Background(), &out, []string{"--env", env}); err != nil {
		t.Fatalf("status: %v", err)
	}
	first := strings.SplitN(out.String()[strings.Index(out.String(), "WARNING"):], "\n", 2)[0]
	if !regexp.MustCompile(`^WARNING: node-1's certificate has EXPIRED \(on .* UTC\): renew it now$`).MatchString(first) {
		t.Errorf("first warning %q, want node-1's expiry first:\n%s", first, out.String())
	}

	// A long-lived cluster: one line, no warning.
	out.Reset()
	now = time.Now
	if err := runStatusCmd(context.Background(), &out, []string{"--env", expiringCluster(t, 3650, 365, 365)}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "WARNING") || !regexp.MustCompile(`(?m)^Certificates: none expires within 30 days \(the soonest: .*, in 36[45] days\)$`).MatchString(out.String()) {
		t.Errorf("long-lived certificates:\n%s", out.String())
	}
}
