package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var emptyDigest = digest(nil)

// sealedText re-encodes s with ledger's writer: the writer hashes the
// bytes it is given, so the three digest lines are put back as s names them.
func sealedText(s *audit.SealedStatement) string {
	t := ledger.ShareSealedStatement(s.Cluster, s.Node, s.KEK, s.Version, s.Share, nil, nil, nil, s.Ceremony)
	for _, d := range []struct{ name, val string }{{"public-key", s.PublicKey}, {"commitments", s.Commitments}, {"sealed", s.Sealed}} {
		t = strings.Replace(t, "\n"+d.name+" "+emptyDigest+"\n", "\n"+d.name+" "+d.val+"\n", 1)
	}
	return t
}

func destroyedText(s *audit.DestroyedStatement) string {
	return ledger.ShareDestroyedStatement(s.Cluster, s.Node, s.KEK, s.Version, s.Ceremony)
}

const (
	stmtCluster  = "prod"
	stmtNode     = "n2"
	stmtKEK      = "payroll"
	stmtCeremony = "0123456789abcdef0123456789abcdef"
)

var (
	stmtPub, stmtComm, stmtSealed = []byte("public key"), []byte("commitments"), []byte("sealed share")
	sealedGenuine                 = ledger.ShareSealedStatement(stmtCluster, stmtNode, stmtKEK, 3, 2, stmtPub, stmtComm, stmtSealed, stmtCeremony)
	destroyedGenuine              = ledger.ShareDestroyedStatement(stmtCluster, stmtNode, stmtKEK, 3, stmtCeremony)
	sealedWant                    = audit.SealedStatement{Cluster: stmtCluster, Node: stmtNode, KEK: stmtKEK, Version: 3, Share: 2,
		PublicKey: digest(stmtPub), Commitments: digest(stmtComm), Sealed: digest(stmtSealed), Ceremony: stmtCeremony}
	destroyedWant = audit.DestroyedStatement{Cluster: stmtCluster, Node: stmtNode, KEK: stmtKEK, Version: 3, Ceremony: stmtCeremony}
)

func TestStatementGenuine(t *testing.T) {
	s, err := audit.ParseSealedStatement(sealedGenuine)
	if err != nil {
		t.Fatal(err)
	}
	want := sealedWant
	want.Label = "custos:kek:payroll:3"
	if *s != want {
		t.Errorf("sealed statement parsed as %+v, want %+v", *s, want)
	}
	if err := audit.CheckSealed(sealedGenuine, sealedWant); err != nil {
		t.Errorf("genuine sealing statement: %v", err)
	}
	// A reader that no longer has the sealed share, or whose version escrow
	// recovery re-dealt, does not compare those.
	lax := sealedWant
	lax.Sealed, lax.Ceremony = "", ""
	if err := audit.CheckSealed(sealedGenuine, lax); err != nil {
		t.Errorf("without sealed share and ceremony: %v", err)
	}
	d, err := audit.ParseDestroyedStatement(destroyedGenuine)
	if err != nil {
		t.Fatal(err)
	}
	if *d != (audit.DestroyedStatement{Cluster: stmtCluster, Node: stmtNode, KEK: stmtKEK, Version: 3, Label: "custos:kek:payroll:3", Ceremony: stmtCeremony}) {
		t.Errorf("destruction statement parsed as %+v", *d)
	}
	if err := audit.CheckDestroyed(destroyedGenuine, destroyedWant); err != nil {
		t.Errorf("genuine destruction statement: %v", err)
	}
}

// edit returns text with its lines changed by f.
func edit(text string, f func([]string) []string) string {
	return strings.Join(f(strings.Split(strings.TrimSuffix(text, "\n"), "\n")), "\n") + "\n"
}

// What an attacker would try: statements that are almost the genuine one.
func TestStatementAttacks(t *testing.T) {
	without := func(prefix string) func([]string) []string {
		return func(ls []string) []string {
			var out []string
			for _, l := range ls {
				if !strings.HasPrefix(l, prefix) {
					out = append(out, l)
				}
			}
			return out
		}
	}
	swap := func(i, j int) func([]string) []string {
		return func(ls []string) []string { ls[i], ls[j] = ls[j], ls[i]; return ls }
	}
	appendLine := func(l string) func([]string) []string { return func(ls []string) []string { return append(ls, l) } }
	for _, tc := range []struct {
		name, text, want string
	}{
		{"destroyed: no label line", edit(destroyedGenuine, without("label ")), "line 6"},
		{"destroyed: an extra line", edit(destroyedGenuine, appendLine("note the key was also exported")), "none expected"},
		{"destroyed: a repeated line", edit(destroyedGenuine, appendLine("ceremony other")), "none expected"},
		{"destroyed: reordered", edit(destroyedGenuine, swap(1, 2)), "line 2"},
		{"destroyed: another KEK", ledger.ShareDestroyedStatement(stmtCluster, stmtNode, "hr", 3, stmtCeremony), `names kek "hr"`},
		{"destroyed: another version", ledger.ShareDestroyedStatement(stmtCluster, stmtNode, stmtKEK, 4, stmtCeremony), `names version "4"`},
		{"destroyed: another node", ledger.ShareDestroyedStatement(stmtCluster, "n3", stmtKEK, 3, stmtCeremony), `names node "n3"`},
		{"destroyed: another ceremony", ledger.ShareDestroyedStatement(stmtCluster, stmtNode, stmtKEK, 3, "other"), `names ceremony "other"`},
		{"destroyed: the label of another version", strings.Replace(destroyedGenuine, "payroll:3", "payroll:2", 1), "names label"},
		{"destroyed: a version with a leading zero", strings.Replace(destroyedGenuine, "version 3", "version 03", 1), "not a number"},
		{"destroyed: no final newline", strings.TrimSuffix(destroyedGenuine, "\n"), "newline"},
		{"destroyed: a sealing statement", sealedGenuine, "not a destruction statement"},
		{"destroyed: a blank line after", destroyedGenuine + "\n", "none expected"},
		{"destroyed: CRLF", strings.ReplaceAll(destroyedGenuine, "\n", "\r\n"), "not a destruction statement"},
	} {
		err := audit.CheckDestroyed(tc.text, destroyedWant)
		var se *audit.StatementError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a *StatementError with %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"sealed: no label line", edit(sealedGenuine, without("label ")), "line 7"},
		{"sealed: no sealed line", edit(sealedGenuine, without("sealed ")), "line 10"},
		{"sealed: an extra line", edit(sealedGenuine, appendLine("share 3")), "none expected"},
		{"sealed: reordered", edit(sealedGenuine, swap(8, 9)), "line 9"},
		{"sealed: another KEK", ledger.ShareSealedStatement(stmtCluster, stmtNode, "hr", 3, 2, stmtPub, stmtComm, stmtSealed, stmtCeremony), `names kek "hr"`},
		{"sealed: another version", ledger.ShareSealedStatement(stmtCluster, stmtNode, stmtKEK, 2, 2, stmtPub, stmtComm, stmtSealed, stmtCeremony), `names version "2"`},
		{"sealed: another share", ledger.ShareSealedStatement(stmtCluster, stmtNode, stmtKEK, 3, 1, stmtPub, stmtComm, stmtSealed, stmtCeremony), `names share "1"`},
		{"sealed: another sealed share", ledger.ShareSealedStatement(stmtCluster, stmtNode, stmtKEK, 3, 2, stmtPub, stmtComm, []byte("x"), stmtCeremony), "names sealed"},
		{"sealed: another public key", ledger.ShareSealedStatement(stmtCluster, stmtNode, stmtKEK, 3, 2, []byte("x"), stmtComm, stmtSealed, stmtCeremony), "names public-key"},
		{"sealed: a share over 16 bits", strings.Replace(sealedGenuine, "share 2", "share 65538", 1), "not a number"},
		{"sealed: an uppercase digest", strings.Replace(sealedGenuine, digest(stmtComm), strings.ToUpper(digest(stmtComm)), 1), "not a sha256 digest"},
		{"sealed: a destruction statement", destroyedGenuine, "not a sealing statement"},
	} {
		err := audit.CheckSealed(tc.text, sealedWant)
		var se *audit.StatementError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a *StatementError with %q", tc.name, err, tc.want)
		}
	}
}

// FuzzStatementParse: the parsers never panic, their errors are
// *StatementError, and whatever they accept is exactly what ledger's
// writer writes for the fields they read.
func FuzzStatementParse(f *testing.F) {
	f.Add(sealedGenuine)
	f.Add(destroyedGenuine)
	f.Add(edit(destroyedGenuine, func(ls []string) []string { return ls[:len(ls)-1] }))
	f.Add(ledger.ShareDestroyedStatement("", "", "", 0, ""))
	f.Add(ledger.ShareSealedStatement("c d", "n 1", "k:1", 4294967295, 65535, nil, nil, nil, ""))
	f.Fuzz(func(t *testing.T, text string) {
		var se *audit.StatementError
		if s, err := audit.ParseSealedStatement(text); err == nil {
			if got := sealedText(s); got != text {
				t.Fatalf("accepted %q, which re-encodes as %q", text, got)
			}
		} else if !errors.As(err, &se) {
			t.Fatalf("error %T %v", err, err)
		}
		if s, err := audit.ParseDestroyedStatement(text); err == nil {
			if got := destroyedText(s); got != text {
				t.Fatalf("accepted %q, which re-encodes as %q", text, got)
			}
			if err := audit.CheckDestroyed(text, audit.DestroyedStatement{Cluster: s.Cluster, Node: s.Node, KEK: s.KEK, Version: s.Version, Ceremony: s.Ceremony}); err != nil {
				t.Fatalf("accepted %q, then refused it: %v", text, err)
			}
		} else if !errors.As(err, &se) {
			t.Fatalf("error %T %v", err, err)
		}
	})
}

// FuzzStatementWrite: every statement ledger writes (of values without a
// newline, which a line cannot hold) parses back to what it was written of.
func FuzzStatementWrite(f *testing.F) {
	f.Add(stmtCluster, stmtNode, stmtKEK, uint32(3), uint16(2), stmtPub, stmtComm, stmtSealed, stmtCeremony)
	f.Add("", "", "", uint32(0), uint16(0), []byte{}, []byte{}, []byte{}, "")
	f.Add("a b", "version 3", "label x", uint32(1), uint16(1), []byte{0}, []byte{1}, []byte{2}, "ceremony ")
	f.Fuzz(func(t *testing.T, cluster, node, kekID string, version uint32, share uint16, pub, comm, sealed []byte, proposal string) {
		if strings.Contains(cluster+node+kekID+proposal, "\n") {
			t.Skip()
		}
		st := ledger.ShareSealedStatement(cluster, node, kekID, version, share, pub, comm, sealed, proposal)
		want := audit.SealedStatement{Cluster: cluster, Node: node, KEK: kekID, Version: version, Share: share,
			PublicKey: digest(pub), Commitments: digest(comm), Sealed: digest(sealed), Ceremony: proposal}
		if err := audit.CheckSealed(st, want); err != nil {
			t.Fatalf("ledger's sealing statement %q refused: %v", st, err)
		}
		dt := ledger.ShareDestroyedStatement(cluster, node, kekID, version, proposal)
		if err := audit.CheckDestroyed(dt, audit.DestroyedStatement{Cluster: cluster, Node: node, KEK: kekID, Version: version, Ceremony: proposal}); err != nil {
			t.Fatalf("ledger's destruction statement %q refused: %v", dt, err)
		}
	})
}
