package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

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
