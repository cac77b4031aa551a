// Identity, roles and regions, and the one parser of identity URIs.

package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
)

// Scheme is the URI scheme of a Custos identity SAN.
const Scheme = "custos"

// grammar is the expected form, quoted in error messages.
const grammar = "custos://<cluster>/<role>/<name>?region=XX"

// MaxNameLen is the longest cluster or identity name, in bytes.
const MaxNameLen = 63

// Role is what an identity may do. The zero Role is invalid.
type Role string

// The roles. A node serves the API and talks raft; the others are clients.
const (
	RoleNode     Role = "node"     // a cluster node (server and client)
	RoleAgent    Role = "agent"    // a backup agent or other service account
	RoleOfficer  Role = "officer"  // a security officer
	RoleAuditor  Role = "auditor"  // a read-only auditor
	RoleOperator Role = "operator" // runs and monitors nodes
)

var roles = []Role{RoleNode, RoleAgent, RoleOfficer, RoleAuditor, RoleOperator}

// Roles returns every valid role, in a fresh slice.
func Roles() []Role { return slices.Clone(roles) }

// Valid reports whether r is one of the five roles.
func (r Role) Valid() bool { return slices.Contains(roles, r) }

// euEEA is the ISO 3166-1 alpha-2 codes of the 27 EU member states and the
// three other EEA states (IS, LI, NO), sorted.
var euEEA = []string{
	"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI",
	"FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU",
	"LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
}

// EUEEARegions returns the region codes an identity may carry: the ISO
// 3166-1 alpha-2 codes of the EU and EEA states, upper case, sorted, in a
// fresh slice.
func EUEEARegions() []string { return slices.Clone(euEEA) }

// IsEUEEA reports whether code is one of [EUEEARegions]. It is exact:
// "fr" and "EL" (the EU's own abbreviation for Greece) are not.
func IsEUEEA(code string) bool {
	_, ok := slices.BinarySearch(euEEA, code)
	return ok
}

// Identity is who holds a certificate. The zero Identity is invalid; see
// [Identity.Validate] for the rules.
type Identity struct {
	Cluster string // cluster name, e.g. "prod"
	Name    string // e.g. "node-1", "agent-payroll", "alice"
	Role    Role
	Region  string // EU/EEA code, e.g. "FR"
}

// Validate reports whether every field follows the grammar in the package
// documentation. Errors are *ParseError.
func (id Identity) Validate() error {
	if err := checkLabel("cluster", id.Cluster); err != nil {
		return err
	}
	if !id.Role.Valid() {
		return &ParseError{Reason: fmt.Sprintf("role %q is not one of %s", id.Role, roleList())}
	}
	if err := checkLabel("name", id.Name); err != nil {
		return err
	}
	if !IsEUEEA(id.Region) {
		return &ParseError{Reason: fmt.Sprintf("region %q is not an upper-case EU/EEA country code", id.Region)}
	}
	return nil
}

// URI returns the identity's URI. It is well formed only for an identity
// that passes [Identity.Validate].
func (id Identity) URI() *url.URL {
	return &url.URL{
		Scheme:   Scheme,
		Host:     id.Cluster,
		Path:     "/" + string(id.Role) + "/" + id.Name,
		RawQuery: "region=" + id.Region,
	}
}

// String returns the identity URI, e.g. custos://prod/node/node-1?region=FR.
func (id Identity) String() string {
	return Scheme + "://" + id.Cluster + "/" + string(id.Role) + "/" + id.Name + "?region=" + id.Region
}

// LogValue logs an identity as a group of its four fields.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("cluster", id.Cluster),
		slog.String("role", string(id.Role)),
		slog.String("name", id.Name),
		slog.String("region", id.Region),
	)
}

// ParseError reports an identity URI or field that breaks the grammar.
type ParseError struct {
	URI    string // the input; "" when checking an Identity's fields
	Reason string // what is wrong, e.g. `role "admin" is not one of …`

	parsing bool // URI holds the input, even if it is ""
}

func (e *ParseError) Error() string {
	if !e.parsing {
		return fmt.Sprintf("identity: %s (expected %s)", e.Reason, grammar)
	}
	return fmt.Sprintf("identity: bad custos URI %q: %s (expected %s)", e.URI, e.Reason, grammar)
}

// ErrNoIdentity means a certificate carries no custos URI SAN.
var ErrNoIdentity = errors.New("identity: certificate has no custos identity (expected a URI SAN " + grammar + ")")

// ParseURI parses an identity URI. It accepts exactly the grammar in the
// package documentation and returns a *ParseError for anything else; for an
// accepted s, the identity's String() is s.
func ParseURI(s string) (Identity, error) {
	bad := func(format string, args ...any) (Identity, error) {
		return Identity{}, &ParseError{URI: s, Reason: fmt.Sprintf(format, args...), parsing: true}
	}
	rest, ok := strings.CutPrefix(s, Scheme+"://")
	if !ok {
		return bad("does not start with %s://", Scheme)
	}
	rest, query, ok := strings.Cut(rest, "?")
	if !ok {
		return bad("no ?region=")
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return bad("path has %d segments, want /<role>/<name>", len(parts)-1)
	}
	region, ok := strings.CutPrefix(query, "region=")
	if !ok {
		return bad("query %q is not region=XX", query)
	}
	id := Identity{Cluster: parts[0], Role: Role(parts[1]), Name: parts[2], Region: region}
	if err := id.Validate(); err != nil {
		pe := err.(*ParseError)
		pe.URI, pe.parsing = s, true
		return Identity{}, pe
	}
	return id, nil
}

// FromCertificate returns the identity in cert's custos URI SAN. It does
// not verify the certificate: callers trust it because the TLS handshake
// verified its chain ([PeerIdentity]) or because they issued it. It returns
// [ErrNoIdentity] when cert has no custos URI, and a *ParseError when that
// URI is malformed or there is more than one. Other URI SANs are ignored.
func FromCertificate(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("identity: nil certificate")
	}
	var found []string
	for _, u := range cert.URIs {
		// crypto/x509 parsed the SAN with url.Parse, which lower-cases the
		// scheme; String gives the rest back as written (escapes, port,
		// user info and fragment included), so ParseURI still sees them.
		if u.Scheme == Scheme {
			found = append(found, u.String())
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		return ParseURI(found[0])
	default:
		return Identity{}, &ParseError{Reason: fmt.Sprintf(
			"certificate has %d custos URI SANs (%s), want exactly one", len(found), strings.Join(found, ", "))}
	}
}

// Fingerprint returns "sha256:" and the SHA-256 of cert's DER encoding in 64
// lower-case hex digits: the certificate an actor used, for the key-op log.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckName checks a cluster or identity name: 1-63 bytes of a-z 0-9 . _ -,
// starting and ending with a letter or digit, without "..".
func CheckName(s string) error { return checkLabel("name", s) }

// checkLabel checks a cluster or identity name.
func checkLabel(field, s string) error {
	bad := func(why string) error {
		return &ParseError{Reason: fmt.Sprintf("%s %q %s", field, s, why)}
	}
	if s == "" || len(s) > MaxNameLen {
		return bad(fmt.Sprintf("must be 1-%d bytes", MaxNameLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return bad("may hold only a-z 0-9 . _ -")
		}
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return bad("must start and end with a-z or 0-9")
	}
	if strings.Contains(s, "..") {
		return bad(`must not contain ".."`)
	}
	return nil
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func roleList() string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}
