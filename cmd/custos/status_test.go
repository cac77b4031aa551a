package main

import (
	"bytes"
	"context"
	"encoding/base64"
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
// It returns the env file `custos dev up` would write for it.
func statusCluster(t *testing.T) (fake *httpapitest.Fake, envFile string) {
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
	envFile = writeEnvFile(t, filepath.Join(t.TempDir(), "env"),
		map[string]string{envAddr: "https://127.0.0.1:1," + srv.URL, envCA: files.CA, envCert: files.Cert, envKey: files.Key})
	return fake, envFile
}

// writeEnvFile writes vars as the shell exports the CLI's --env reads
// (as `custos dev up` writes DIR/env), 0600, and returns path.
func writeEnvFile(t *testing.T, path string, vars map[string]string) string {
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

func TestStatus(t *testing.T) {
	clearEnv(t)
	fake, envFile := statusCluster(t)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), &out, &errOut, []string{"status", "--env", envFile}); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	note, _ := fake.Checkpoint(context.Background())
	cp, _, err := ledger.VerifyCheckpoint(note, "custos/dev", fake.Key())
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		`Cluster "dev"`,
		"Leader:  node-1 in FR, at https://127.0.0.1:",
		"Members: 3 (2 voters; 2 of them must be up",
		"node-1  FR",
		"leader",
		"node-2  DE",
		"https://127.0.0.1:1",
		"unreachable",
		"node-3  NL",
		"registered, not yet a voter",
		"ready",
		"Key-op log: 4 entries",
		"Latest checkpoint: 4 entries, root hash " + base64.StdEncoding.EncodeToString(cp.Hash[:]),
		"signed by node node-1 (key custos/dev/node-1)",
		"both signatures verify",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// Flags override the env file, which overrides the environment; the env
// file may be named by its directory.
func TestStatusSettings(t *testing.T) {
	clearEnv(t)
	_, envFile := statusCluster(t)
	vars, err := client.ReadEnvFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	// Environment only.
	for k, v := range vars {
		t.Setenv(k, v)
	}
	if code := run(context.Background(), &out, &errOut, []string{"status"}); code != 0 {
		t.Errorf("from the environment: exit %d: %s", code, errOut.String())
	}
	// A bad environment, corrected by the env file (given as its directory).
	t.Setenv(envAddr, "https://127.0.0.1:1")
	errOut.Reset()
	if code := run(context.Background(), &out, &errOut, []string{"status", "--env", filepath.Dir(envFile)}); code != 0 {
		t.Errorf("env dir over environment: exit %d: %s", code, errOut.String())
	}
	// A flag over both.
	errOut.Reset()
	if code := run(context.Background(), &out, &errOut, []string{"status", "--env", envFile, "--addr", "https://127.0.0.1:1"}); code != 1 ||
		!strings.Contains(errOut.String(), "cannot reach the cluster") {
		t.Errorf("--addr over the env file: exit %d: %s", code, errOut.String())
	}

	clearEnv(t)
	errOut.Reset()
	if code := run(context.Background(), &out, &errOut, []string{"status"}); code != 1 ||
		!strings.Contains(errOut.String(), "$"+envAddr) || !strings.Contains(errOut.String(), "--env") {
		t.Errorf("nothing set: exit %d: %s", code, errOut.String())
	}
	bad := filepath.Join(t.TempDir(), "env")
	os.WriteFile(bad, []byte("export CUSTOS_ADDR=\"unterminated\n"), 0o600)
	errOut.Reset()
	if code := run(context.Background(), &out, &errOut, []string{"status", "--env", bad}); code != 1 || !strings.Contains(errOut.String(), "bad quoting") {
		t.Errorf("malformed env file: exit %d: %s", code, errOut.String())
	}
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

// Without a leader the command still prints what it knows, and fails.
func TestStatusWithoutLeader(t *testing.T) {
	clearEnv(t)
	fake, envFile := statusCluster(t)
	fake.SetLeader("", "")
	fake.SetNotReady(fmt.Errorf("%w: no leader known (raft state Candidate)", keysvc.ErrNotReady))
	var out, errOut bytes.Buffer
	code := run(context.Background(), &out, &errOut, []string{"status", "--env", envFile})
	if code != 1 || !strings.Contains(errOut.String(), "not serving: no leader, no verifiable checkpoint") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Leader:  none known", "not ready: node not ready: no leader known", "Latest checkpoint: unavailable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
