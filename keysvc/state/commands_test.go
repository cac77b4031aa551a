package state

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustEncode(t *testing.T, c *Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testInfo returns a valid NodeInfo for node id of cluster "test", with
// fresh keys.
func testInfo(t *testing.T, id, region string) NodeInfo {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ml, _, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	text, err := ledger.NodeKey{Name: ledger.KeyName("test", id), ECDSA: &ec.PublicKey, MLDSA: ml}.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, 32)
	rand.Read(seed)
	kem, err := wrapkey.PublicKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return NodeInfo{ID: id, Region: region, RaftAddr: id + ":7000", APIAddr: "https://" + id + ".test:8201", Keys: string(text),
		KEM: base64.StdEncoding.EncodeToString(kem)}
}

// Entries cross the raft log byte for byte, whatever encoding/json would
// escape in a json.RawMessage (U+2028 and U+2029 since Go 1.27, '<' '>' '&'
// by default).
func TestCommandKeepsEntryBytes(t *testing.T) {
	var raws []json.RawMessage
	for _, s := range []string{"a\u2028b\u2029c", "<&>", "\"\\\n\x01", "€ \U0001F512"} {
		raw, err := ledger.Entry{Time: t0, Type: "kek.unwrap", Actor: ledger.Actor{Identity: "agent-1", Role: "agent"},
			Outcome: ledger.OutcomeOK, Reason: s, Details: map[string]string{"dek.sha256": s}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	data := mustEncode(t, &Command{Type: CmdLedgerAppend, Entries: raws})
	c, err := Decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if len(c.Entries) != len(raws) {
		t.Fatalf("%d entries decoded, want %d", len(c.Entries), len(raws))
	}
	for i := range raws {
		if !bytes.Equal(c.Entries[i], raws[i]) {
			t.Errorf("entry %d:\n got %q\nwant %q", i, c.Entries[i], raws[i])
		}
	}
	if _, err := Encode(&Command{Type: CmdLedgerAppend, Entries: []json.RawMessage{[]byte(`{"a":`)}}); err == nil {
		t.Error("an entry that is not JSON was encoded")
	}
}

func TestDecodeCommandStrict(t *testing.T) {
	for _, in := range []string{
		``, `{}`, `{"v":1}`, `{"v":1,"type":"ledger.append","extra":1}`, `{"v":1,"type":"x"}`,
		`{"v":1,"type":"ledger.append"}{}`, `[]`, `{"v":"1","type":"ledger.append"}`,
	} {
		_, err := Decode([]byte(in))
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Errorf("decode %q: %v, want *CommandError", in, err)
		}
	}
}

func TestNodeInfoValidate(t *testing.T) {
	good := testInfo(t, "n1", "DE")
	if err := good.validate("test"); err != nil {
		t.Fatal(err)
	}
	other := testInfo(t, "n2", "DE")
	for name, mut := range map[string]func(*NodeInfo){
		"id":          func(i *NodeInfo) { i.ID = "N1" },
		"region":      func(i *NodeInfo) { i.Region = "de" },
		"non-eu":      func(i *NodeInfo) { i.Region = "US" },
		"raft":        func(i *NodeInfo) { i.RaftAddr = "" },
		"api":         func(i *NodeInfo) { i.APIAddr = "http://n1:8201" },
		"keys":        func(i *NodeInfo) { i.Keys = "garbage" },
		"others keys": func(i *NodeInfo) { i.Keys = other.Keys },
	} {
		i := good
		mut(&i)
		if err := i.validate("test"); !errors.Is(err, ErrInvalidNode) {
			t.Errorf("%s: %v, want ErrInvalidNode", name, err)
		}
	}
	if err := good.validate("prod"); !errors.Is(err, ErrInvalidNode) {
		t.Errorf("keys of another cluster accepted: %v", err)
	}
}

// The state machine refuses appended entries of its own types, whoever
// proposes them.
func TestAppendRefusesReservedTypes(t *testing.T) {
	for _, typ := range []string{"ceremony.execute", "kek.destroyed", "cluster.init"} {
		raw := []byte(`{"index":0,"time":"2026-01-02T03:04:05.000000000Z","type":"` + typ + `","actor":{"identity":"x"},"outcome":"ok"}`)
		if _, _, err := stamp(raw, 5, 0); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("%s: %v, want a refusal", typ, err)
		}
	}
}
