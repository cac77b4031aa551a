// Syntax rules for the names, codes and texts proposals carry. They repeat
// rules defined elsewhere in Custos (identity names and regions in
// keysvc/identity, KEK ids in keysvc/wrapkey) so that this package stays a
// standard-library leaf; rules_test.go checks that they agree.

package ceremony

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what a proposal may carry.
const (
	MaxProposalSize  = 64 << 10 // canonical bytes of one proposal
	MaxSignatureSize = 16 << 10 // bytes of one approval signature
	MaxTextLen       = 1024     // bytes of a reason
	MaxBundleLen     = 8 << 10  // bytes of an officer's public key bundle
	MaxNodeKeysLen   = 8 << 10  // bytes of a node's checkpoint verifier keys
	MaxListLen       = 64       // entries in any list (regions, identities, context fields)
	MaxThreshold     = 255      // largest KEK threshold t (threshold.MaxShares)
	MaxEscrowM       = 255      // largest escrow quorum m
	MaxQuorum        = 255      // largest officer quorum M
	maxLabel         = 63       // identity name rule
	maxKEKID         = 64       // wrapkey.MaxKEKIDLen
	maxContextKey    = 64
)

// roles are the identity roles (keysvc/identity), in order.
var roles = []string{"node", "agent", "officer", "auditor", "operator"}

// euEEA is the region codes of keysvc/identity: ISO 3166-1 alpha-2 of the
// EU and EEA states, upper case, sorted.
var euEEA = []string{
	"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI",
	"FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU",
	"LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
}

// checkName checks a cluster, node or officer id: the identity name rule,
// 1-63 bytes of [a-z0-9._-], first and last a letter or digit, no "..".
func checkName(field, s string) error {
	if s == "" || len(s) > maxLabel {
		return fmt.Errorf("%s %q must be 1-%d bytes", field, s, maxLabel)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%s %q may hold only a-z 0-9 . _ -", field, s)
		}
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return fmt.Errorf("%s %q must start and end with a-z or 0-9", field, s)
	}
	if strings.Contains(s, "..") {
		return fmt.Errorf("%s %q must not contain \"..\"", field, s)
	}
	return nil
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// checkKEKID checks a KEK id: 1-64 bytes of [a-z0-9._-] (wrapkey.ValidateKEKID).
func checkKEKID(s string) error {
	if s == "" || len(s) > maxKEKID {
		return fmt.Errorf("kek id %q must be 1-%d bytes", s, maxKEKID)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("kek id %q may hold only a-z 0-9 . _ -", s)
		}
	}
	return nil
}

func checkRegion(field, s string) error {
	if _, ok := slices.BinarySearch(euEEA, s); !ok {
		return fmt.Errorf("%s %q is not an upper-case EU/EEA country code", field, s)
	}
	return nil
}

// checkSet checks a list that stands for a set: at most MaxListLen entries,
// each passing check, sorted and without duplicates, so that each set has
// one encoding.
func checkSet(field string, xs []string, check func(string) error) error {
	if len(xs) > MaxListLen {
		return fmt.Errorf("%s: %d entries, over the limit of %d", field, len(xs), MaxListLen)
	}
	for i, x := range xs {
		if err := check(x); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		if i > 0 && xs[i-1] >= x {
			return fmt.Errorf("%s must be sorted and without duplicates: %q then %q", field, xs[i-1], x)
		}
	}
	return nil
}

// checkRegions checks a sorted set of region codes.
func checkRegions(field string, rs []string) error {
	return checkSet(field, rs, func(s string) error { return checkRegion("region", s) })
}

// checkText checks free text an officer will read (a reason): 1..MaxTextLen
// bytes of valid UTF-8 made of printable characters and plain spaces only,
// so no control, bidirectional-override or other invisible character can
// change what Describe shows.
func checkText(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is required", field)
	}
	if len(s) > MaxTextLen {
		return fmt.Errorf("%s is %d bytes, over the limit of %d", field, len(s), MaxTextLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("%s holds the non-printable character %U at byte %d", field, r, i)
	}
	return nil
}

// checkToken checks 1..max bytes of printable ASCII without spaces.
func checkToken(field, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1-%d bytes", field, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%s %q holds byte %#02x at %d: want printable ASCII without spaces", field, s, c, i)
		}
	}
	return nil
}

// checkASCIILines checks 1..max bytes of printable ASCII and newlines: a key
// bundle or key lines, opaque here.
func checkASCIILines(field, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1-%d bytes", field, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c > '~') && c != '\n' {
			return fmt.Errorf("%s holds byte %#02x at %d: want printable ASCII and newlines", field, c, i)
		}
	}
	return nil
}

// checkPrintableASCII checks 1..max bytes of printable ASCII, spaces included.
func checkPrintableASCII(field, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1-%d bytes", field, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return fmt.Errorf("%s holds byte %#02x at %d: want one line of printable ASCII", field, c, i)
		}
	}
	return nil
}

// checkAPIAddr checks an https base URL, as keysvc does for NodeInfo.
func checkAPIAddr(s string) error {
	if err := checkToken("api address", s, 256); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery || strings.HasSuffix(s, "#") {
		return fmt.Errorf("api address %q is not an https base URL (https://host:port)", s)
	}
	return nil
}

// checkContextKey checks a required context field name: [a-z][a-z0-9._-]{0,63}.
func checkContextKey(s string) error {
	if s == "" || len(s) > maxContextKey || s[0] < 'a' || s[0] > 'z' {
		return fmt.Errorf("context field %q is not [a-z][a-z0-9._-]{0,63}", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("context field %q is not [a-z][a-z0-9._-]{0,63}", s)
		}
	}
	return nil
}

// checkPrincipal checks an identity a policy grants to: "<role>/<name>".
func checkPrincipal(s string) error {
	role, name, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("identity %q is not <role>/<name>", s)
	}
	if err := checkRole(role); err != nil {
		return fmt.Errorf("identity %q: %w", s, err)
	}
	if err := checkName("name", name); err != nil {
		return fmt.Errorf("identity %q: %w", s, err)
	}
	return nil
}

func checkRole(s string) error {
	if !slices.Contains(roles, s) {
		return fmt.Errorf("role %q is not one of %s", s, strings.Join(roles, ", "))
	}
	return nil
}
