package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/officer"
)

// A one-node in-memory cluster behind the real API, three officers with key
// files and env files, and the CLI run through init, propose, list,
// approve and show.
func TestOfficerCeremonyCLI(t *testing.T) {
	clearEnv(t)
	pki := httpapitest.NewPKI(t, "test")
	c := keysvctest.NewCluster(t, 1, keysvctest.Options{CAs: pki.Pool()})
	api := httpapi.New(c.Node("n1"), httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	// loseAnswer makes the next approval commit and its answer get lost,
	// as when the leader dies between the two.
	var loseAnswer atomic.Bool
	srv := pki.Serve(t, "n1", "DE", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/approvals") && loseAnswer.CompareAndSwap(true, false) {
			api.ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler)
		}
		api.ServeHTTP(w, r)
	}))
	dir := t.TempDir()
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeEnv := func(name string, role identity.Role, extra map[string]string) string {
		files := pki.Issue(t, role, name, "DE")
		vars := map[string]string{envAddr: srv.URL, envCA: files.CA, envCert: files.Cert, envKey: files.Key}
		for k, v := range extra {
			vars[k] = v
		}
		return writeEnvFile(t, filepath.Join(dir, name+".env"), vars)
	}
	envs := map[string]string{}
	var pubs []string
	for _, name := range []string{"alice", "bob", "carol"} {
		if _, err := officer.Keygen(dir, officer.Config{Name: name, WorkFactor: officer.MinWorkFactor}, []byte("correct horse battery staple")); err != nil {
			t.Fatal(err)
		}
		key, pub := officer.KeyFiles(dir, name)
		pubs = append(pubs, pub)
		envs[name] = writeEnv(name, identity.RoleOfficer, map[string]string{envOfficerKey: key, envOfficerPassphrase: passFile})
	}
	opEnv := writeEnv("ops", identity.RoleOperator, nil)

	cli := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), &out, &errOut, args); code != wantCode {
			t.Fatalf("custos %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		t.Logf("$ custos %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
		return out.String() + errOut.String()
	}
	out := cli(1, "officer", "list", "--env", envs["alice"])
	if !strings.Contains(out, "not_initialized") && !strings.Contains(out, "operator init") {
		t.Errorf("list before init: %s", out)
	}
	out = cli(0, "operator", "init", "--env", opEnv, "--officers", strings.Join(pubs, ","), "--quorum", "2")
	if !strings.Contains(out, "quorum 2 of 3 officers") || !strings.Contains(out, "sha256:") {
		t.Errorf("init: %s", out)
	}
	if out = cli(1, "operator", "init", "--env", opEnv, "--officers", strings.Join(pubs, ","), "--quorum", "2"); !strings.Contains(out, "already initialized") {
		t.Errorf("second init: %s", out)
	}
	if out = cli(1, "officer", "approve", "0123", "--passphrase", "hunter2hunter2", "--env", envs["alice"]); strings.Contains(out, "hunter2") || !strings.Contains(out, "never taken as a flag value") {
		t.Errorf("passphrase flag: %s", out)
	}
	if out = cli(1, "officer", "propose", "kek.rotate", "--env", envs["alice"]); !strings.Contains(out, "kek.rotate needs --kek ID") {
		t.Errorf("kek.rotate: %s", out)
	}

	out = cli(0, "officer", "propose", "quorum.set", "--m", "3", "--env", envs["alice"])
	m := regexp.MustCompile(`Proposed ([0-9a-f]{32})`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "pending: 1 of 2 approvals") {
		t.Fatalf("propose: %s", out)
	}
	id := m[1]
	if out = cli(0, "officer", "list", "--env", envs["bob"]); !strings.Contains(out, id) || !strings.Contains(out, "pending") {
		t.Errorf("list: %s", out)
	}
	if out = cli(1, "officer", "approve", id, "--env", envs["alice"]); !strings.Contains(out, "duplicate_approver") && !strings.Contains(out, "already approved") {
		t.Errorf("approve twice: %s", out)
	}
	out = cli(0, "officer", "propose", "officer.remove", "--id", "carol", "--env", envs["carol"])
	other := regexp.MustCompile(`Proposed ([0-9a-f]{32})`).FindStringSubmatch(out)[1]
	loseAnswer.Store(true)
	out = cli(0, "officer", "approve", id, "--env", envs["bob"])
	if !strings.Contains(out, "The answer was lost") || !strings.Contains(out, "records the approval by bob") {
		t.Errorf("approve whose answer was lost: %s", out)
	}
	if !strings.Contains(out, "You are approving:") || !strings.Contains(out, "status     executed") {
		t.Errorf("approve: %s", out)
	}
	out = cli(0, "officer", "show", id, "--env", envs["carol"])
	for _, want := range []string{"status     executed", "approved   by alice", "approved   by bob", "closed in entry"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q: %s", want, out)
		}
	}
	if out = cli(0, "officer", "list", "--env", envs["bob"]); !strings.Contains(out, "pending (superseded)") {
		t.Errorf("list after the quorum change: %s", out)
	}
	if out = cli(1, "officer", "approve", other, "--env", envs["alice"]); !strings.Contains(out, "superseded") {
		t.Errorf("approve a superseded proposal: %s", out)
	}
	if out = cli(0, "officer", "show", other, "--env", envs["bob"]); !strings.Contains(out, "refused (superseded)") {
		t.Errorf("show a superseded proposal: %s", out)
	}
	if out = cli(0, "status", "--env", envs["carol"]); !strings.Contains(out, "Officers: alice bob carol (quorum 3; default KEK threshold 2; state version 2)") {
		t.Errorf("status: %s", out)
	}
	if st := c.Node("n1").Status(); st.Quorum != 3 {
		t.Errorf("quorum %d after the ceremony", st.Quorum)
	}
}
