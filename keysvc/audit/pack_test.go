package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// rewrite reads a pack with the Reader and writes its records back with
// the Writer.
func rewrite(pack []byte) ([]byte, error) {
	rd := audit.NewReader(bytes.NewReader(pack))
	var buf bytes.Buffer
	var w *audit.Writer
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			if w == nil {
				return nil, errors.New("no header")
			}
			if err := w.Close(); err != nil {
				return nil, err
			}
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
		switch r := rec.(type) {
		case *audit.Header:
			w, err = audit.NewWriter(&buf, *r)
		case *audit.NodeKeys:
			err = w.NodeKeys(r.Text)
		case *audit.Officer:
			err = w.Officer(*r)
		case *audit.Ceremony:
			err = w.Ceremony(*r)
		case *audit.Certificate:
			err = w.Certificate(r.DestructionCertificate)
		case *audit.Frontier:
			err = w.Frontier(r.Size, r.Hashes)
		case *audit.EntryRecord:
			err = w.Entry(r.Index, r.Canonical)
		case *audit.CheckpointRecord:
			err = w.Checkpoint(r.Note)
		case *audit.Consistency:
			err = w.Consistency(r.Old, r.New, r.Hashes)
		default:
			err = fmt.Errorf("unexpected %T", rec)
		}
		if err != nil {
			return nil, err
		}
	}
}

func TestPackRoundTrip(t *testing.T) {
	s := std(t)
	n := s.size()
	for _, pack := range [][]byte{
		s.pack(0, n, packOpts{consistency: [2]uint64{10, n}}),
		s.pack(17, n, packOpts{}),
		s.pack(n, n, packOpts{}),
	} {
		again, err := rewrite(pack)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, pack) {
			t.Fatal("the Writer does not reproduce what the Reader read")
		}
	}
	// Every record type appears, in order.
	pack := s.pack(17, n, packOpts{consistency: [2]uint64{10, n}})
	rd := audit.NewReader(bytes.NewReader(pack))
	var types []string
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if k := len(types); k == 0 || types[k-1] != rec.Type() {
			types = append(types, rec.Type())
		}
	}
	if got := strings.Join(types, ","); got != "header,node_keys,officer,ceremony,certificate,frontier,entry,checkpoint,consistency" {
		t.Errorf("types %s", got)
	}
	if h := rd.Header(); h == nil || h.From != 17 || h.To != n || !h.Created.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("header %+v", h)
	}
	// Scan sees every entry and the other records.
	var count uint64
	c, err := audit.Scan(bytes.NewReader(pack), func(e ledger.Entry) error { count++; return nil })
	if err != nil || count != n-17 || len(c.Ceremonies) != 5 || c.Consistency == nil || c.Frontier == nil {
		t.Errorf("scan: %d entries, %v", count, err)
	}
}

func TestReaderRejects(t *testing.T) {
	s := std(t)
	n := s.size()
	pack := s.pack(0, n, packOpts{})
	ls := splitLines(pack)
	entry := lineOf(t, ls, 5)
	officer := lineOfType(t, ls, "officer", 0)
	ceremony := lineOfType(t, ls, "ceremony", 0)
	cp := lineOfType(t, ls, "checkpoint", 0)
	first := lineOf(t, ls, 0)
	edit := func(k int, l string) []byte {
		c := append([][]byte(nil), ls...)
		c[k] = []byte(l)
		return joinLines(c)
	}
	swap := func(a, b int) []byte {
		c := append([][]byte(nil), ls...)
		c[a], c[b] = c[b], c[a]
		return joinLines(c)
	}
	drop := func(k int) []byte {
		c := append([][]byte(nil), ls[:k]...)
		return joinLines(append(c, ls[k+1:]...))
	}
	e5 := string(ls[entry])
	for _, c := range []struct {
		name string
		pack []byte
		line int
		msg  string
	}{
		{"unknown type", edit(officer, `{"t":"witness","note":"x"}`+"\n"), officer + 1, `unknown record type "witness"`},
		{"unknown field", edit(officer, strings.Replace(string(ls[officer]), `{"t":"officer",`, `{"t":"officer","extra":1,`, 1)), officer + 1, `unknown field "extra"`},
		{"not canonical", edit(officer, strings.Replace(string(ls[officer]), `","bundle"`, `", "bundle"`, 1)), officer + 1, "not in canonical form"},
		{"duplicate field", edit(officer, strings.Replace(string(ls[officer]), `{"t":"officer",`, `{"t":"officer","id":"x",`, 1)), officer + 1, "not in canonical form"},
		{"bad base64", edit(entry, strings.Replace(e5, `"e":"`, `"e":"!`, 1)), entry + 1, "entry record is not in canonical form"},
		{"base64 with a newline escape", edit(entry, strings.Replace(e5, `"e":"`, `"e":"\r`, 1)), entry + 1, "entry record is not in canonical form"},
		{"leading zero", edit(entry, strings.Replace(e5, `"i":5`, `"i":05`, 1)), entry + 1, "entry record is not in canonical form"},
		{"not a record", edit(officer, "[1,2]\n"), officer + 1, "not a record"},
		{"out of order", swap(officer, ceremony), officer + 2, "officer record after ceremony record: out of order"},
		{"no header", drop(0), 1, "the pack must start with a header"},
		{"second checkpoint", append(bytes.Clone(pack[:len(pack)]), ls[cp]...), cp + 2, "a second checkpoint record"},
		{"incomplete line", pack[:len(pack)-1], cp + 1, "incomplete last line"},
		{"too long", edit(officer, `{"t":"officer","id":"`+strings.Repeat("a", audit.MaxLineSize)+"\"}\n"), officer + 1, "longer than"},
		{"entry in the wrong pack", edit(0, strings.Replace(string(ls[0]), `"from":0`, `"from":3`, 1)), first + 1, "the pack starts at entry 3 but has no frontier record before its entry record"},
		{"no checkpoint", drop(cp), cp, "the pack ends without a checkpoint record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := audit.NewReader(bytes.NewReader(c.pack))
			var err error
			for err == nil {
				_, err = rd.Next()
			}
			var f *audit.Failure
			if !errors.As(err, &f) {
				t.Fatalf("got %v, want a *Failure", err)
			}
			if f.Line != c.line || !strings.Contains(f.Msg, c.msg) {
				t.Fatalf("got line %d %q; want line %d saying %q", f.Line, f.Msg, c.line, c.msg)
			}
			if _, again := rd.Next(); again != err {
				t.Error("the error is not sticky")
			}
		})
	}
	var empty *audit.Failure
	if _, err := audit.NewReader(strings.NewReader("")).Next(); !errors.As(err, &empty) || !strings.Contains(empty.Msg, "empty pack") {
		t.Errorf("empty pack: %v", err)
	}
}

func TestWriterEnforcesOrder(t *testing.T) {
	s := std(t)
	var buf bytes.Buffer
	h := audit.Header{Cluster: "test", Origin: "custos/test", From: 2, To: 4}
	w, err := audit.NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Officer(audit.Officer{ID: "x", Bundle: "b", Fingerprint: "sha256:00"}); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("bad fingerprint: %v", err)
	}
	if err := w.Entry(2, s.entries[2]); err == nil || !strings.Contains(err.Error(), "no frontier record") {
		t.Errorf("entry before the frontier: %v", err)
	}
	if err := w.Frontier(2, []tlog.Hash{{}, {}}); err == nil {
		t.Error("a frontier of size 2 with two hashes")
	}
	if err := w.Frontier(2, []tlog.Hash{{}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Certificate(client.DestructionCertificate{}); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("certificate after the frontier: %v", err)
	}
	if err := w.Entry(3, s.entries[3]); err == nil || !strings.Contains(err.Error(), "entry 2 is missing") {
		t.Errorf("entry 3 first: %v", err)
	}
	if err := w.Entry(2, s.entries[2]); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(s.checkpoint(4, "n1")); err == nil || !strings.Contains(err.Error(), "entries 3 to 3 are missing") {
		t.Errorf("checkpoint early: %v", err)
	}
	if err := w.Entry(3, s.entries[3]); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(s.checkpoint(5, "n1")); err == nil || !strings.Contains(err.Error(), "checkpoint: size 5, but the pack's entries end at 4") {
		t.Errorf("checkpoint of another size: %v", err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "without a checkpoint") {
		t.Errorf("close without checkpoint: %v", err)
	}
}

// FuzzReader: the Reader never panics, its errors are *Failure, and what it
// accepts the Writer writes back byte for byte (one encoding per pack).
func FuzzReader(f *testing.F) {
	s := newSynth(f)
	s.registerNode("n2")
	s.init(2, "alice", "bob")
	s.keyOps(3)
	s.execute("alice", officerAdd(f, "carol"), []string{"alice", "bob"}, ceremonyOpts{})
	a, req := s.activate(activation{})
	s.release("n2", "n1", idx(a), req, "payroll")
	n := s.size()
	f.Add(s.pack(0, n, packOpts{}))
	f.Add(s.pack(3, n, packOpts{consistency: [2]uint64{2, n}}))
	f.Add([]byte(`{"t":"header","format":"custos-evidence/1","cluster":"c","origin":"custos/c","from":0,"to":0,"created":"2026-01-01T00:00:00.000000000Z"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := audit.NewReader(bytes.NewReader(data))
		for {
			_, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var fl *audit.Failure
				if !errors.As(err, &fl) {
					t.Fatalf("error %v is %T, not a *Failure", err, err)
				}
				return
			}
		}
		again, err := rewrite(data)
		if err != nil {
			t.Fatalf("accepted, but not written back: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a pack that is not in canonical form:\n%q\n%q", data, again)
		}
	})
}
