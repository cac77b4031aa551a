package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// keyOp runs a key-operation command with stdin and returns its exit code,
// stdout and stderr apart.
func (h *kekHarness) keyOp(stdin []byte, args ...string) (int, []byte, string) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	code := runStdio(context.Background(), stdio{in: bytes.NewReader(stdin), out: &out, err: &errOut}, args)
	h.t.Logf("$ custos %s  [exit %d]\n%s", strings.Join(args, " "), code, errOut.String())
	return code, out.Bytes(), errOut.String()
}

func TestKeyOpsCLI(t *testing.T) {
	h := newKEKHarness(t)
	h.cli(0, "operator", "init", "--env", h.opEnv, "--officers", strings.Join(h.pubs, ","), "--quorum", "2")
	h.execute("alice", "bob", "kek.create", "--kek", "backups", "--regions", "DE", "--context", "dataset")
	agent := h.writeEnv("agent-1", identity.RoleAgent, nil)
	agentNL := h.writeEnvIn("agent-nl", "NL", identity.RoleAgent, nil)

	// kek show checks every node's sealing statement.
	out := h.cli(0, "kek", "show", "backups", "--env", h.envs["auditor"])
	wantAll(t, "kek show", out, "statements verified: n1, n2, n3 signed", "sealed it in its HSM")

	dek := make([]byte, 32)
	rand.Read(dek)
	dekFile := filepath.Join(h.dir, "dek")
	if err := os.WriteFile(dekFile, dek, 0o600); err != nil {
		t.Fatal(err)
	}
	ctxArgs := []string{"--context", "dataset=db1,purpose=nightly"}

	// wrap from stdin: base64 on stdout, the receipt on stderr.
	code, wrapped64, stderr := h.keyOp(dek, append([]string{"wrap", "--kek", "backups", "--env", agent}, ctxArgs...)...)
	if code != 0 {
		t.Fatalf("wrap: exit %d: %s", code, stderr)
	}
	wantAll(t, "wrap receipt", stderr, `wrapped 32-byte data key with KEK "backups" version 1; receipt: log entry `)
	// The CLI keeps the log size it saw, for the next command on any node.
	if files, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "custos", "log-size-*")); len(files) != 1 {
		t.Errorf("log size files after a wrap: %v", files)
	} else if b, err := os.ReadFile(files[0]); err != nil || strings.TrimSpace(string(b)) == "" || strings.TrimSpace(string(b)) == "0" {
		t.Errorf("log size kept: %q, %v", b, err)
	}
	if !bytes.HasSuffix(wrapped64, []byte("\n")) {
		t.Errorf("wrap output lacks its newline: %q", wrapped64)
	}
	blob, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(wrapped64)))
	if err != nil {
		t.Fatalf("wrap output is not base64: %v", err)
	}
	if b, err := wrapkey.Parse(blob); err != nil || b.KEKID != "backups" || b.KEKVersion != 1 {
		t.Fatalf("wrapped blob: %+v, %v", b, err)
	}
	b64File := filepath.Join(h.dir, "dek.b64")
	if err := os.WriteFile(b64File, wrapped64, 0o644); err != nil {
		t.Fatal(err)
	}

	// unwrap the base64 form (the KEK named by the blob) to stdout, which
	// is no terminal here.
	code, plain, stderr := h.keyOp(nil, append([]string{"unwrap", "--in", b64File, "--env", agent}, ctxArgs...)...)
	if code != 0 || !bytes.Equal(plain, dek) {
		t.Fatalf("unwrap: exit %d, key %x, want %x: %s", code, plain, dek, stderr)
	}
	wantAll(t, "unwrap receipt", stderr, `unwrapped 32-byte data key with KEK "backups" version 1; receipt: log entry `)

	// wrap to a file (the raw blob), unwrap it from stdin to a 0600 file;
	// context pairs in any order and over repeated flags.
	rawFile, outFile := filepath.Join(h.dir, "dek.wrapped"), filepath.Join(h.dir, "dek.out")
	if code, _, stderr = h.keyOp(nil, "wrap", "--kek", "backups", "--in", dekFile, "--out", rawFile, "--context", "purpose=nightly", "--context", "dataset=db1", "--env", agent); code != 0 {
		t.Fatalf("wrap --out: exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(rawFile)
	if err != nil || !bytes.HasPrefix(raw, []byte(wrapkey.Magic)) {
		t.Fatalf("wrap --out wrote %q…, %v", raw[:min(8, len(raw))], err)
	}
	if code, _, stderr = h.keyOp(raw, append([]string{"unwrap", "--kek", "backups", "--out", outFile, "--env", agent}, ctxArgs...)...); code != 0 {
		t.Fatalf("unwrap --out: exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(outFile)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap --out wrote %x, %v; want %x", got, err, dek)
	}
	if fi, err := os.Stat(outFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("unwrap --out file mode %v, %v; want 0600", fi.Mode(), err)
	}

	// Refusals show the API's code and message.
	for _, tc := range []struct {
		name  string
		stdin []byte
		args  []string
		want  []string
	}{
		{"wrong context", raw, []string{"unwrap", "--env", agent, "--context", "dataset=db2,purpose=nightly"}, []string{"unwrap_failed"}},
		{"missing context", dek, []string{"wrap", "--kek", "backups", "--env", agent, "--context", "purpose=x"}, []string{"context_missing", "dataset"}},
		{"region", raw, append([]string{"unwrap", "--env", agentNL}, ctxArgs...), []string{"region_denied", "NL"}},
		{"region wrap", dek, append([]string{"wrap", "--kek", "backups", "--env", agentNL}, ctxArgs...), []string{"region_denied"}},
		{"unknown KEK", dek, append([]string{"wrap", "--kek", "nope", "--env", agent}, ctxArgs...), []string{"unknown_kek"}},
		{"unknown KEK unwrap", raw, append([]string{"unwrap", "--kek", "nope", "--env", agent}, ctxArgs...), []string{"unknown_kek"}},
		{"unknown KEK datakey", nil, []string{"datakey", "--kek", "nope", "--wrapped-only", "--env", agent}, []string{"unknown_kek"}},
		{"not a blob", []byte("hello"), []string{"unwrap", "--env", agent}, []string{"neither a wrapped key nor its base64"}},
		{"empty", nil, []string{"wrap", "--kek", "backups", "--env", agent}, []string{"no data key (empty input)"}},
		{"no kek", dek, []string{"wrap", "--env", agent}, []string{"--kek ID is required"}},
		{"bad context", dek, []string{"wrap", "--kek", "backups", "--context", "dataset", "--env", agent}, []string{`"dataset": want key=value`}},
		{"dup context", dek, []string{"wrap", "--kek", "backups", "--context", "a=1,a=2", "--env", agent}, []string{`context key "a" given twice`}},
		{"datakey where", nil, []string{"datakey", "--kek", "backups", "--env", agent}, []string{"--out-plaintext FILE", "--wrapped-only"}},
		{"datakey both stdout", nil, []string{"datakey", "--kek", "backups", "--out-plaintext", "-", "--env", agent}, []string{"give --out-wrapped FILE"}},
		{"datakey wrapped-only plaintext", nil, []string{"datakey", "--kek", "backups", "--wrapped-only", "--out-plaintext", "x", "--env", agent}, []string{"drop --out-plaintext"}},
	} {
		code, out, stderr := h.keyOp(tc.stdin, tc.args...)
		if code != 1 || len(out) != 0 {
			t.Errorf("%s: exit %d, stdout %q; want 1 and nothing", tc.name, code, out)
		}
		wantAll(t, tc.name, stderr, tc.want...)
	}

	// datakey: both forms to files; the wrapped one unwraps to the other.
	keyFile, wrappedFile := filepath.Join(h.dir, "new.key"), filepath.Join(h.dir, "new.wrapped")
	code, out2, stderr := h.keyOp(nil, append([]string{"datakey", "--kek", "backups", "--out-plaintext", keyFile, "--out-wrapped", wrappedFile, "--env", agent}, ctxArgs...)...)
	if code != 0 || len(out2) != 0 {
		t.Fatalf("datakey: exit %d, stdout %q: %s", code, out2, stderr)
	}
	wantAll(t, "datakey receipt", stderr, `new 32-byte data key wrapped with KEK "backups" version 1; receipt: log entry `)
	newKey, err := os.ReadFile(keyFile)
	if err != nil || len(newKey) != 32 {
		t.Fatalf("datakey key file: %d bytes, %v", len(newKey), err)
	}
	if code, plain, stderr = h.keyOp(nil, append([]string{"unwrap", "--in", wrappedFile, "--out", "-", "--env", agent}, ctxArgs...)...); code != 0 || !bytes.Equal(plain, newKey) {
		t.Fatalf("unwrap of datakey's blob: exit %d, %x, want %x: %s", code, plain, newKey, stderr)
	}
	// --wrapped-only: base64 on stdout, no data key anywhere.
	code, w64, stderr := h.keyOp(nil, append([]string{"datakey", "--kek", "backups", "--wrapped-only", "--env", agent}, ctxArgs...)...)
	if code != 0 {
		t.Fatalf("datakey --wrapped-only: exit %d: %s", code, stderr)
	}
	wantAll(t, "datakey --wrapped-only receipt", stderr, "new wrapped-only data key wrapped with KEK")
	if code, plain, stderr = h.keyOp(w64, append([]string{"unwrap", "--env", agent}, ctxArgs...)...); code != 0 || len(plain) != 32 {
		t.Fatalf("unwrap of a wrapped-only data key: exit %d, %d bytes: %s", code, len(plain), stderr)
	}
}

// A statement that does not attest the share as published fails the check.
func TestVerifySealedTampered(t *testing.T) {
	h := newKEKHarness(t)
	h.cli(0, "operator", "init", "--env", h.opEnv, "--officers", strings.Join(h.pubs, ","), "--quorum", "2")
	h.execute("alice", "bob", "kek.create", "--kek", "k1")
	cl, err := (&apiFlags{env: h.envs["auditor"]}).client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	k, err := cl.KEK(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := cl.NodeKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := k.Versions[0]
	if err := verifySealed("test", "k1", v, v.Shares[0], keys); err != nil {
		t.Fatalf("genuine statement: %v", err)
	}
	sh := v.Shares[0]
	other := v.Shares[1]
	for _, tc := range []struct {
		name    string
		cluster string
		shIndex uint16
		sealed  []byte
		stmt    string
		want    string
	}{
		{"another share's statement", "test", sh.Index, sh.Sealed, other.Statement, "statement"},
		{"sealed share swapped", "test", sh.Index, other.Sealed, sh.Statement, "statement names sealed"},
		{"index swapped", "test", other.Index, sh.Sealed, sh.Statement, "statement names share"},
		{"other cluster", "prod", sh.Index, sh.Sealed, sh.Statement, "no key"},
		{"garbage", "test", sh.Index, sh.Sealed, "hello\n", "statement"},
	} {
		s := sh
		s.Index, s.Sealed, s.Statement = tc.shIndex, tc.sealed, tc.stmt
		err := verifySealed(tc.cluster, "k1", v, s, keys)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestContextFlag(t *testing.T) {
	c := contextFlag{}
	for _, s := range []string{"b=2, a=1", "c=", "d=x=y"} {
		if err := c.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	if got := c.String(); got != "a=1,b=2,c=,d=x=y" {
		t.Errorf("context %q", got)
	}
	for _, bad := range []string{"x", "=v", "a=3"} {
		if err := c.Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

func TestParseWrapped(t *testing.T) {
	blob := append([]byte(wrapkey.Magic), 1, 2, 3)
	for _, in := range [][]byte{blob, []byte(base64.StdEncoding.EncodeToString(blob) + "\n"), []byte("  " + base64.StdEncoding.EncodeToString(blob)[:4] + "\n" + base64.StdEncoding.EncodeToString(blob)[4:])} {
		got, err := parseWrapped(in)
		if err != nil || !bytes.Equal(got, blob) {
			t.Errorf("parseWrapped(%q) = %x, %v", in, got, err)
		}
	}
	if _, err := parseWrapped([]byte("not base64!")); err == nil {
		t.Error("parseWrapped of garbage: no error")
	}
}

func TestDemoKEKLine(t *testing.T) {
	if got := demoKEKLine(client.Ceremony{}); got != `KEK "demo" already exists (custos kek show demo)` {
		t.Errorf("existing: %q", got)
	}
	got := demoKEKLine(client.Ceremony{ID: "ab12", Closed: 8, Approvals: []client.Approval{{Officer: "alice"}, {Officer: "bob"}}})
	if want := `created KEK "demo" by a kek.create ceremony of alice and bob (proposal ab12, executed in log entry 8)`; !strings.HasPrefix(got, want) {
		t.Errorf("created: %q, want %q…", got, want)
	}
}
