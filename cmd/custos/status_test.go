package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
