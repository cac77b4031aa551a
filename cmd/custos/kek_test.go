package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/kek/kekhsm"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
)

// kekHarness is a three-node in-memory cluster with the leader's API
// served, officers alice, bob and carol (quorum 2) with key and env files,
// an auditor's env file, and the CLI.
type kekHarness struct {
	t        *testing.T
	c        *keysvctest.Cluster
	dir      string
	pass     string            // passphrase file
	envs     map[string]string // env file per officer, and "auditor"
	pubs     []string
	opEnv    string
	writeEnv func(name string, role identity.Role, extra map[string]string) string
	// writeEnvIn is writeEnv for a certificate in region.
	writeEnvIn func(name, region string, role identity.Role, extra map[string]string) string
}

func newKEKHarness(t *testing.T) *kekHarness {
	clearEnv(t)
	pki := httpapitest.NewPKI(t, "test")
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{CAs: pki.Pool()})
	leader := c.Leader()
	id := leader.Info().ID
	srv := pki.Serve(t, id, keysvctest.Region(id), httpapi.New(leader, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	h := &kekHarness{t: t, c: c, dir: t.TempDir(), envs: map[string]string{}}
	h.pass = filepath.Join(h.dir, "passphrase")
	if err := os.WriteFile(h.pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.writeEnv = func(name string, role identity.Role, extra map[string]string) string {
		return h.writeEnvIn(name, "DE", role, extra)
	}
	h.writeEnvIn = func(name, region string, role identity.Role, extra map[string]string) string {
		files := pki.Issue(t, role, name, region)
		vars := map[string]string{envAddr: srv.URL, envCA: files.CA, envCert: files.Cert, envKey: files.Key}
		for k, v := range extra {
			vars[k] = v
		}
		return writeEnvFile(t, filepath.Join(h.dir, name+".env"), vars)
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		key, pub := h.keygen(h.dir, name)
		h.pubs = append(h.pubs, pub)
		h.envs[name] = h.writeEnv(name, identity.RoleOfficer, map[string]string{envOfficerKey: key, envOfficerPassphrase: h.pass})
	}
	h.envs["auditor"] = h.writeEnv("audit-1", identity.RoleAuditor, nil)
	h.opEnv = h.writeEnv("ops", identity.RoleOperator, nil)
	return h
}

// keygen makes officer name's key files in dir.
func (h *kekHarness) keygen(dir, name string) (key, pub string) {
	h.t.Helper()
	if _, err := officer.Keygen(dir, officer.Config{Name: name, WorkFactor: officer.MinWorkFactor}, []byte("correct horse battery staple")); err != nil {
		h.t.Fatal(err)
	}
	return officer.KeyFiles(dir, name)
}

// run runs the CLI and returns its exit code and output.
func (h *kekHarness) run(args ...string) (int, string) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), &out, &errOut, args)
	h.t.Logf("$ custos %s  [exit %d]\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String() + errOut.String()
}

// cli runs the CLI and fails the test unless it exits with wantCode.
func (h *kekHarness) cli(wantCode int, args ...string) string {
	h.t.Helper()
	code, out := h.run(args...)
	if code != wantCode {
		h.t.Fatalf("custos %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
	}
	return out
}

var proposedRE = regexp.MustCompile(`Proposed ([0-9a-f]{32})`)

// ceremony has officer a propose, and officer b approve, and returns the
// proposal id and the approval's output (which shows the status).
func (h *kekHarness) ceremony(a, b string, args ...string) (string, string) {
	h.t.Helper()
	out := h.cli(0, append(append([]string{"officer", "propose"}, args...), "--env", h.envs[a])...)
	m := proposedRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "pending: 1 of 2 approvals") {
		h.t.Fatalf("propose %s: %s", strings.Join(args, " "), out)
	}
	return m[1], h.cli(0, "officer", "approve", m[1], "--env", h.envs[b])
}

// execute runs a ceremony that must execute; a refusal fails the test with
// its code and reason.
func (h *kekHarness) execute(a, b string, args ...string) string {
	h.t.Helper()
	id, out := h.ceremony(a, b, args...)
	if !strings.Contains(out, "status     executed") {
		h.t.Fatalf("%s (proposal %s) did not execute:\n%s", strings.Join(args, " "), id, statusLine(out))
	}
	return id
}

func statusLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "status ") {
			return l
		}
	}
	return out
}

func wantAll(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// waitCertificate runs destruction-certificate until it exits 0 (the
// nodes attest asynchronously), for at most about ten seconds.
func (h *kekHarness) waitCertificate(args ...string) string {
	h.t.Helper()
	args = append([]string{"kek", "destruction-certificate"}, args...)
	var code int
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if code, out = h.run(args...); code == 0 || time.Now().After(deadline) {
			break
		}
		if !strings.Contains(out, "not attested yet") {
			h.t.Fatalf("destruction-certificate: exit %d, and not for want of attestations:\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 {
		h.t.Fatalf("destruction-certificate still incomplete after 10s (exit %d):\n%s", code, out)
	}
	return out
}

func TestKEKCeremoniesCLI(t *testing.T) {
	h := newKEKHarness(t)
	alice, bob, carol, auditor := h.envs["alice"], h.envs["bob"], h.envs["carol"], h.envs["auditor"]
	h.cli(0, "operator", "init", "--env", h.opEnv, "--officers", strings.Join(h.pubs, ","), "--quorum", "2")

	// Bad flag combinations, refused before anything is signed.
	policyFile := filepath.Join(h.dir, "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"threshold":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	badPolicy, unsorted := filepath.Join(h.dir, "bad.json"), filepath.Join(h.dir, "unsorted.json")
	if err := os.WriteFile(badPolicy, []byte(`{"threshold":2,"colour":"blue"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unsorted, []byte(`{"threshold":2,"activation_ttl_seconds":0,
		"wrap":{"roles":["officer","agent"],"identities":[],"regions":["DE"]},
		"unwrap":{"roles":[],"identities":[],"regions":[]},"required_context":[],"escrow":{"enabled":false,"m":0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kek.create"}, "kek.create needs --kek ID"},
		{[]string{"kek.create", "--kek", "x", "--reason", "r"}, "kek.create does not take --reason"},
		{[]string{"quorum.set", "--m", "3", "--kek", "x"}, "quorum.set does not take --kek (it takes --m)"},
		{[]string{"kek.disable", "--kek", "x", "--version", "1", "--all"}, "give --version N or --all, not both"},
		{[]string{"kek.enable", "--kek", "x"}, "kek.enable needs --version N or --all"},
		{[]string{"kek.destroy", "--kek", "x"}, "kek.destroy needs --version N"},
		{[]string{"kek.destroy", "--kek", "x", "--version", "0"}, "versions are numbered from 1"},
		{[]string{"legal_hold.set", "--kek", "x"}, "legal_hold.set needs --reason TEXT"},
		{[]string{"escrow.recover", "--kek", "x", "--version", "1"}, "escrow.recover needs --reason TEXT"},
		{[]string{"kek.create", "--kek", "x", "--policy", policyFile, "--threshold", "3"}, "either as --policy FILE or as flags, not both"},
		{[]string{"kek.policy", "--kek", "x"}, "kek.policy needs --policy FILE or the policy flags"},
		{[]string{"kek.create", "--kek", "x", "--threshold", "1"}, "threshold 1: must be 2-255"},
		{[]string{"kek.create", "--kek", "x", "--ttl", "1500ms"}, "--ttl 1.5s: whole seconds"},
		{[]string{"kek.create", "--kek", "x", "--escrow-m", "1"}, "escrow m 1: must be 2-"},
		{[]string{"kek.create", "--kek", "x", "--wrap-identities", "agent/a"}, "is redundant"},
		{[]string{"kek.create", "--kek", "x", "--context", "Bad Field"}, "(check --context)"},
		{[]string{"kek.create", "--kek", "x", "--policy", policyFile}, "it lacks activation_ttl_seconds, escrow, required_context, unwrap, wrap"},
		{[]string{"kek.create", "--kek", "x", "--policy", badPolicy}, "not a KEK policy"},
		{[]string{"kek.create", "--kek", "x", "--policy", unsorted}, "--policy " + unsorted + ": wrap roles"},
		{[]string{"kek.create", "--kek", "Not An ID"}, "kek.create:"},
		{[]string{"bogus.op"}, "unknown operation \"bogus.op\""},
	} {
		// Flags that cannot make the operation are a usage error (exit
		// 2), found before anything is sent; a policy the ceremony rules
		// refuse is a refusal (exit 1).
		code := 1
		if strings.Contains(tc.want, " needs ") || strings.Contains(tc.want, "does not take") || strings.Contains(tc.want, "not both") ||
			strings.Contains(tc.want, "numbered from 1") || strings.Contains(tc.want, "unknown operation") {
			code = 2
		}
		out := h.cli(code, append(append([]string{"officer", "propose"}, tc.args...), "--env", alice)...)
		if !strings.Contains(out, tc.want) {
			t.Errorf("propose %s: want %q in:\n%s", strings.Join(tc.args, " "), tc.want, out)
		}
	}
	if out := h.cli(0, "kek", "list", "--env", auditor); !strings.Contains(out, "no KEKs") {
		t.Errorf("empty list: %s", out)
	}

	// kek.create from flags: lists sorted and deduplicated.
	h.execute("alice", "bob", "kek.create", "--kek", "payroll", "--ttl", "10m", "--wrap-roles", "agent,agent",
		"--unwrap-roles", "", "--unwrap-identities", "agent/restore", "--context", "purpose,dataset,purpose")
	out := h.cli(0, "kek", "list", "--env", auditor)
	wantAll(t, "list", out, "payroll", "v1 active")
	out = h.cli(0, "kek", "show", "payroll", "--env", auditor)
	wantAll(t, "show", out, `KEK "payroll"`, "threshold    any 2 node shares", "kept in memory for 10m0s",
		"wrap         any agent, from AT, BE, DE, ES, FR, IT, NL, PL, SE", "unwrap       agent/restore, from",
		"required: dataset, purpose", "escrow       none", "version 1    active", "any 2 of 3 node shares: n1 (share 1), n2 (share 2), n3 (share 3)",
		"public key sha256:", "legal hold   none", `"required_context":["dataset","purpose"]`)
	var k client.KEK
	if err := json.Unmarshal([]byte(h.cli(0, "kek", "show", "payroll", "--json", "--env", auditor)), &k); err != nil || k.ID != "payroll" || len(k.Versions) != 1 {
		t.Errorf("show --json: %+v %v", k, err)
	}
	if out = h.cli(1, "kek", "destruction-certificate", "payroll", "1", "--env", auditor); !strings.Contains(out, "not_destroyed") {
		t.Errorf("certificate of an active version: %s", out)
	}
	if out = h.cli(1, "kek", "show", "nope", "--env", auditor); !strings.Contains(out, "unknown_kek") {
		t.Errorf("show unknown: %s", out)
	}

	// kek.policy from flags changes what is given and keeps the rest.
	h.execute("bob", "carol", "kek.policy", "--kek", "payroll", "--ttl", "0")
	out = h.cli(0, "kek", "show", "payroll", "--env", auditor)
	wantAll(t, "show after kek.policy", out, "activation   per request", "required: dataset, purpose", "unwrap       agent/restore")

	// kek.policy from a file: the policy JSON kek show prints, edited.
	full := filepath.Join(h.dir, "full.json")
	if err := os.WriteFile(full, []byte(`{"threshold":3,"activation_ttl_seconds":60,
		"wrap":{"roles":["agent"],"identities":["auditor/audit-1"],"regions":["DE","FR"]},
		"unwrap":{"roles":[],"identities":["agent/restore"],"regions":["DE"]},
		"required_context":["dataset"],"escrow":{"enabled":false,"m":0}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.execute("carol", "alice", "kek.policy", "--kek", "payroll", "--policy", full)
	out = h.cli(0, "kek", "show", "payroll", "--env", auditor)
	wantAll(t, "show after kek.policy --policy", out, "threshold    any 3 node shares", "kept in memory for 1m0s",
		"wrap         any agent, auditor/audit-1, from DE, FR", "unwrap       agent/restore, from DE", "required: dataset",
		"any 2 of 3 node shares") // version 1 keeps its split

	// Legal hold: a destroy is refused while it lasts.
	h.execute("alice", "bob", "legal_hold.set", "--kek", "payroll", "--reason", "case 2026-17")
	wantAll(t, "list under hold", h.cli(0, "kek", "list", "--env", auditor), `held: "case 2026-17"`)
	id, out := h.ceremony("alice", "carol", "kek.destroy", "--kek", "payroll", "--version", "1")
	wantAll(t, "destroy under legal hold", out, "refused (legal_hold)")
	wantAll(t, "show the refused destroy", h.cli(0, "officer", "show", id, "--env", bob), "refused (legal_hold)", "under legal hold")
	h.execute("bob", "carol", "legal_hold.release", "--kek", "payroll", "--reason", "case closed")
	destroy := h.execute("alice", "carol", "kek.destroy", "--kek", "payroll", "--version", "1")
	wantAll(t, "list after destroy", h.cli(0, "kek", "list", "--env", auditor), "v1 destroyed")

	out = h.waitCertificate("payroll", "1", "--env", auditor)
	wantAll(t, "certificate", out, `KEK "payroll" version 1, cluster test`, "public key  sha256:", destroy, "approved by alice, carol",
		"n1         attested in log entry", "n2         attested in log entry", "n3         attested in log entry", "Complete:")
	if strings.Contains(out, "Escrow caveat") {
		t.Errorf("caveat without escrow: %s", out)
	}
	out = h.cli(0, "kek", "show", "payroll", "--env", auditor)
	wantAll(t, "show destroyed", out, "version 1    destroyed", "attested by n1, n2, n3")
	var dc client.DestructionCertificate
	if err := json.Unmarshal([]byte(h.cli(0, "kek", "destruction-certificate", "payroll", "1", "--json", "--env", auditor)), &dc); err != nil || !dc.Complete || len(dc.Holders) != 3 {
		t.Errorf("certificate --json: %+v %v", dc, err)
	}
	// Against a trusted keys file; and one that lacks a node's keys.
	keys, err := h.c.Leader().NodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	writeKeys := func(name string, keys []ledger.NodeKey) string {
		var b []byte
		for _, k := range keys {
			txt, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, txt...)
		}
		path := filepath.Join(h.dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	all, some := writeKeys("keys", keys), writeKeys("some-keys", keys[:1])
	wantAll(t, "certificate with --keys", h.cli(0, "kek", "destruction-certificate", "payroll", "1", "--keys", all, "--env", auditor), "the trusted node keys in "+all, "Complete:")
	out = h.cli(1, "kek", "destruction-certificate", "payroll", "1", "--keys", some, "--env", auditor)
	wantAll(t, "certificate with missing keys", out, "statement FAILS: no key", "do not verify")
	if strings.Contains(out, "Complete:") {
		t.Errorf("complete with unverified statements: %s", out)
	}

	// Rotate, disable every version, enable one.
	h.execute("alice", "bob", "kek.rotate", "--kek", "payroll")
	wantAll(t, "list after rotate", h.cli(0, "kek", "list", "--env", auditor), "v1 destroyed, v2 active")
	wantAll(t, "show after rotate", h.cli(0, "kek", "show", "payroll", "--env", auditor), "version 2    active", "any 3 of 3 node shares")
	h.execute("bob", "carol", "kek.disable", "--kek", "payroll", "--all")
	wantAll(t, "list after disable", h.cli(0, "kek", "list", "--env", auditor), "v1 destroyed, v2 disabled")
	h.execute("carol", "alice", "kek.enable", "--kek", "payroll", "--version", "2")
	wantAll(t, "list after enable", h.cli(0, "kek", "list", "--env", auditor), "v1 destroyed, v2 active")

	// Escrow: each officer checks their share; a wrong key fails.
	h.execute("bob", "alice", "kek.create", "--kek", "vault", "--escrow-m", "2", "--threshold", "3")
	out = h.cli(0, "kek", "show", "vault", "--env", auditor)
	wantAll(t, "show escrowed", out, "escrow       new versions escrowed to the officers; any 2 recover one", "escrow     any 2 of 3 officers: alice, bob, carol",
		"any 3 of 3 node shares")
	wantAll(t, "verify-share alice", h.cli(0, "officer", "verify-share", "--kek", "vault", "--version", "1", "--env", alice),
		`OK: your escrow share of KEK "vault" version 1 is share 1, one of 3 (any 2 of officers alice, bob, carol`)
	wantAll(t, "verify-share carol (latest)", h.cli(0, "officer", "verify-share", "--kek", "vault", "--env", carol), "is share 3, one of 3")
	otherDir := t.TempDir()
	wrongKey, _ := h.keygen(otherDir, "alice")
	out = h.cli(1, "officer", "verify-share", "--kek", "vault", "--version", "1", "--officer-key", wrongKey, "--env", alice)
	wantAll(t, "verify-share with another alice key", out, "FAILED", "sealed to another key")
	daveKey, _ := h.keygen(otherDir, "dave")
	out = h.cli(1, "officer", "verify-share", "--kek", "vault", "--version", "1", "--officer-key", daveKey, "--env", alice)
	wantAll(t, "verify-share of a non-holder", out, "FAILED: dave holds no escrow share")
	wantAll(t, "verify-share without escrow", h.cli(1, "officer", "verify-share", "--kek", "payroll", "--version", "1", "--env", alice), "no officer escrow")
	wantAll(t, "verify-share bad version", h.cli(1, "officer", "verify-share", "--kek", "vault", "--version", "7", "--env", alice), `kek "vault" has no version 7`)
	wantAll(t, "verify-share without --kek", h.cli(2, "officer", "verify-share", "--env", alice), "--kek ID is required")

	// Escrow recovery, after every node's HSM lost its key for the version:
	// proposer and approver each send their share.
	for _, id := range h.c.IDs() {
		if err := kekhsm.Destroy(h.c.Token(id), "vault", 1); err != nil {
			t.Fatal(err)
		}
	}
	out = h.cli(0, "officer", "propose", "escrow.recover", "--kek", "vault", "--version", "1", "--reason", "recovery drill", "--env", carol)
	wantAll(t, "propose escrow.recover", out, "Your escrow share (3 of 3 officers, any 2 recover)", "pending: 1 of 2 approvals")
	rid := proposedRE.FindStringSubmatch(out)[1]
	out = h.cli(0, "officer", "approve", rid, "--env", alice)
	wantAll(t, "approve escrow.recover", out, "Your escrow share (1 of 3 officers")
	if !strings.Contains(out, "status     executed") {
		t.Fatalf("escrow.recover did not execute:\n%s", statusLine(out))
	}
	wantAll(t, "show recovered", h.cli(0, "kek", "show", "vault", "--env", auditor), "recovered  from escrow in log entries")
	h.cli(0, "officer", "verify-share", "--kek", "vault", "--version", "1", "--env", bob)

	// A destroyed escrowed version: the certificate says escrow remains.
	h.execute("alice", "bob", "kek.destroy", "--kek", "vault", "--version", "1")
	out = h.waitCertificate("vault", "1", "--env", auditor)
	wantAll(t, "escrowed certificate", out, "Escrow caveat: this version was escrowed with officers alice, bob, carol (2 of 3)",
		"so 2 of them could still recover it; the nodes' attestations do not cover escrow", "Complete:")
	wantAll(t, "verify-share after destroy", h.cli(0, "officer", "verify-share", "--kek", "vault", "--version", "1", "--env", bob), "destroyed on the nodes and the cluster will not recover it")
}

// Policy lists are sorted sets whatever order the flags give them in.
func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in    string
		upper bool
		want  string
	}{
		{"", false, ""},
		{"agent", false, "agent"},
		{" b, a ,b,,a ", false, "a,b"},
		{"fr,DE, de", true, "DE,FR"},
	} {
		if got := strings.Join(splitList(tc.in, tc.upper), ","); got != tc.want {
			t.Errorf("splitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
