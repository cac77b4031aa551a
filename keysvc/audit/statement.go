// Node statements read back: the one strict parser of the sealing and
// destruction statements nodes sign (ledger.ShareSealedStatement,
// ShareDestroyedStatement), and checks of them against what a reader
// expects. Signatures are ledger.VerifyStatement's business; these see
// the text it returns.

package audit

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/custos-eu/custos/keysvc/kek"
)

// First lines of the node statements, as ledger writes them.
const (
	SealedHeader    = "custos/v1 kek share sealed"
	DestroyedHeader = "custos/v1 kek share destroyed"
)

// SealedStatement is what a node's sealing statement says: it checked its
// share of KEK version against the commitments and sealed it in its HSM.
// Digests are "sha256:" and lowercase hex, as written.
type SealedStatement struct {
	Cluster, Node, KEK string
	Version            uint32
	Share              uint16
	Label              string // the HSM label of the sealing key: kek.Label(KEK, Version)
	PublicKey          string // digest of the version's public key
	Commitments        string // digest of the dealing's commitments
	Sealed             string // digest of the sealed share
	Ceremony           string // the proposal that dealt (or re-dealt) the version
}

// DestroyedStatement is what a node's destruction statement says: it
// destroyed its sealing key of KEK version for ceremony.
type DestroyedStatement struct {
	Cluster, Node, KEK string
	Version            uint32
	Label              string // kek.Label(KEK, Version)
	Ceremony           string
}

// StatementError is the one error of parsing and checking statements.
type StatementError struct {
	Msg string
}

func (e *StatementError) Error() string { return e.Msg }

func stmtErr(format string, args ...any) error {
	return &StatementError{Msg: fmt.Sprintf(format, args...)}
}

// statementLines splits text into the values of the lines "<name> <value>"
// that follow header, in exactly the order of names: no line missing, none
// extra, the last ending in "\n". kind names the statement in errors.
func statementLines(text, header, kind string, names ...string) ([]string, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, stmtErr("not a %s statement: it does not end in a newline", kind)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if lines[0] != header {
		return nil, stmtErr("not a %s statement (first line %q)", kind, lines[0])
	}
	lines = lines[1:]
	vals := make([]string, len(names))
	for i, name := range names {
		if i >= len(lines) {
			return nil, stmtErr("statement names no %s", name)
		}
		v, ok := strings.CutPrefix(lines[i], name+" ")
		if !ok {
			return nil, stmtErr("statement line %d is %q, not its %s", i+2, lines[i], name)
		}
		vals[i] = v
	}
	if len(lines) > len(names) {
		return nil, stmtErr("statement has %d lines after its %s, none expected (%q)", len(lines)-len(names), names[len(names)-1], lines[len(names)])
	}
	return vals, nil
}

// statementUint reads a decimal as strconv.FormatUint writes it.
func statementUint(name, s string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, stmtErr("statement names %s %q, not a number", name, s)
	}
	return n, nil
}

// statementDigest checks a "sha256:<64 lowercase hex>" value.
func statementDigest(name, s string) error {
	h, ok := strings.CutPrefix(s, "sha256:")
	if ok && len(h) == 64 && strings.Trim(h, "0123456789abcdef") == "" {
		return nil
	}
	return stmtErr("statement names %s %q, not a sha256 digest", name, s)
}

func statementLabel(label, id string, version uint32) error {
	if want := kek.Label(id, version); label != want {
		return stmtErr("statement names label %q, not %q", label, want)
	}
	return nil
}

// ParseSealedStatement parses a sealing statement: exactly the lines
// ledger.ShareSealedStatement writes, in its order, its label the KEK
// version's. Errors are *StatementError.
func ParseSealedStatement(text string) (*SealedStatement, error) {
	v, err := statementLines(text, SealedHeader, "sealing",
		"cluster", "node", "kek", "version", "share", "label", "public-key", "commitments", "sealed", "ceremony")
	if err != nil {
		return nil, err
	}
	s := &SealedStatement{Cluster: v[0], Node: v[1], KEK: v[2], Label: v[5], PublicKey: v[6], Commitments: v[7], Sealed: v[8], Ceremony: v[9]}
	ver, err := statementUint("version", v[3], 32)
	if err != nil {
		return nil, err
	}
	share, err := statementUint("share", v[4], 16)
	if err != nil {
		return nil, err
	}
	s.Version, s.Share = uint32(ver), uint16(share)
	if err := statementLabel(s.Label, s.KEK, s.Version); err != nil {
		return nil, err
	}
	for _, d := range []struct{ name, val string }{{"public-key", s.PublicKey}, {"commitments", s.Commitments}, {"sealed", s.Sealed}} {
		if err := statementDigest(d.name, d.val); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ParseDestroyedStatement parses a destruction statement: exactly the
// lines ledger.ShareDestroyedStatement writes, in its order, its label the
// KEK version's. Errors are *StatementError.
func ParseDestroyedStatement(text string) (*DestroyedStatement, error) {
	v, err := statementLines(text, DestroyedHeader, "destruction", "cluster", "node", "kek", "version", "label", "ceremony")
	if err != nil {
		return nil, err
	}
	ver, err := statementUint("version", v[3], 32)
	if err != nil {
		return nil, err
	}
	s := &DestroyedStatement{Cluster: v[0], Node: v[1], KEK: v[2], Version: uint32(ver), Label: v[4], Ceremony: v[5]}
	if err := statementLabel(s.Label, s.KEK, s.Version); err != nil {
		return nil, err
	}
	return s, nil
}

// field is one value a check compares: what the statement names, and
// what the reader expects.
type field struct{ name, got, want string }

func compare(fields []field) error {
	for _, f := range fields {
		if f.got != f.want {
			return stmtErr("statement names %s %q, not %q", f.name, f.got, f.want)
		}
	}
	return nil
}

func decimal(n uint64) string { return strconv.FormatUint(n, 10) }

// CheckSealed parses text (ParseSealedStatement) and checks that it names
// want's cluster, node, KEK, version, share, public key and commitments,
// and want's sealed digest and ceremony unless those are "" (the API no
// longer keeps the sealed share; escrow recovery re-dealt the version
// under another ceremony). Errors are *StatementError.
func CheckSealed(text string, want SealedStatement) error {
	s, err := ParseSealedStatement(text)
	if err != nil {
		return err
	}
	fs := []field{{"cluster", s.Cluster, want.Cluster}, {"node", s.Node, want.Node}, {"kek", s.KEK, want.KEK},
		{"version", decimal(uint64(s.Version)), decimal(uint64(want.Version))}, {"share", decimal(uint64(s.Share)), decimal(uint64(want.Share))},
		{"public-key", s.PublicKey, want.PublicKey}, {"commitments", s.Commitments, want.Commitments}}
	if want.Sealed != "" {
		fs = append(fs, field{"sealed", s.Sealed, want.Sealed})
	}
	if want.Ceremony != "" {
		fs = append(fs, field{"ceremony", s.Ceremony, want.Ceremony})
	}
	return compare(fs)
}

// CheckDestroyed parses text (ParseDestroyedStatement) and checks that it
// names want's cluster, node, KEK, version and ceremony: that is, text is
// exactly ledger.ShareDestroyedStatement of them. Errors are
// *StatementError.
func CheckDestroyed(text string, want DestroyedStatement) error {
	s, err := ParseDestroyedStatement(text)
	if err != nil {
		return err
	}
	return compare([]field{{"cluster", s.Cluster, want.Cluster}, {"node", s.Node, want.Node}, {"kek", s.KEK, want.KEK},
		{"version", decimal(uint64(s.Version)), decimal(uint64(want.Version))}, {"ceremony", s.Ceremony, want.Ceremony}})
}
