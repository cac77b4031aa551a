package officer

// The RFC 7512 PKCS#11 URI subset that names an officer's classical key on a token.

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/custos-eu/custos/hsm"
)

// PKCS11URI names the token, the key on it, the PKCS#11 library and where the PIN
// comes from: the subset of RFC 7512 that Custos needs. For example
//
//	pkcs11:token=officer-alice;object=custos-officer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/home/alice/.pin
//
// Path attributes: token (the token label) or slot-id (decimal), exactly one;
// object (the key's label), required; type, which if present must be "private".
// Query attributes: module-path (absolute path of the library), required;
// pin-source, required: "file:" and an absolute path of a file holding the PIN (its
// trailing newline trimmed), or "env:" and the name of an environment variable (a
// Custos extension). Values are percent-decoded. Every other RFC 7512 attribute
// (serial, manufacturer, id, module-name, ...) is refused rather than ignored, and so
// is pin-value: a PIN is never written in a URI.
type PKCS11URI struct {
	Token      string // token label, at most 32 bytes; or
	SlotID     *uint  // slot id
	Object     string // label of the ECDSA P-256 key pair
	ModulePath string // absolute path of the PKCS#11 library
	PINFile    string // PIN from this file; or
	PINEnv     string // PIN from this environment variable
}

const uriFormat = "pkcs11 uri"

// ParsePKCS11URI parses s; errors are *ParseError.
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	rest, ok := cutPrefixFold(s, "pkcs11:")
	if !ok {
		return nil, parseErr(uriFormat, "", `does not start with "pkcs11:"`)
	}
	if strings.Contains(rest, "#") {
		return nil, parseErr(uriFormat, "", "fragments (#) are not allowed")
	}
	pathPart, query, hasQuery := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	attrs := func(part, sep string, isQuery bool) error {
		if part == "" {
			return nil
		}
		for _, attr := range strings.Split(part, sep) {
			name, raw, ok := strings.Cut(attr, "=")
			if !ok || name == "" {
				return parseErr(uriFormat, "", "attribute %q is not name=value", attr)
			}
			if seen[name] {
				return parseErr(uriFormat, name, "appears more than once")
			}
			seen[name] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return parseErr(uriFormat, name, "bad percent-encoding")
			}
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] == 0x7f {
					return parseErr(uriFormat, name, "control character in value")
				}
			}
			if err := u.set(name, v, isQuery); err != nil {
				return err
			}
		}
		return nil
	}
	if err := attrs(pathPart, ";", false); err != nil {
		return nil, err
	}
	if hasQuery {
		if err := attrs(query, "&", true); err != nil {
			return nil, err
		}
	}
	if err := u.valid(); err != nil {
		return nil, err
	}
	return u, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// set records one attribute.
func (u *PKCS11URI) set(name, v string, isQuery bool) error {
	where := "path"
	if isQuery {
		where = "query"
	}
	switch {
	case !isQuery && name == "token":
		u.Token = v
	case !isQuery && name == "object":
		u.Object = v
	case !isQuery && name == "slot-id":
		if v == "" || strings.TrimLeft(v, "0123456789") != "" {
			return parseErr(uriFormat, name, "%q is not a decimal number", v)
		}
		n, err := strconv.ParseUint(v, 10, strconv.IntSize)
		if err != nil {
			return parseErr(uriFormat, name, "%q is out of range", v)
		}
		slot := uint(n)
		u.SlotID = &slot
	case !isQuery && name == "type":
		if v != "private" {
			return parseErr(uriFormat, name, "%q: the key is a private key, type=private", v)
		}
	case isQuery && name == "module-path":
		u.ModulePath = v
	case isQuery && name == "pin-source":
		switch {
		case strings.HasPrefix(v, "file:"):
			p := strings.TrimPrefix(v, "file:")
			if strings.HasPrefix(p, "//") { // file:///abs, empty authority
				p = strings.TrimPrefix(p, "//")
				if !strings.HasPrefix(p, "/") {
					return parseErr(uriFormat, name, "file URI with a host; use file:/absolute/path")
				}
			}
			if p == "" {
				return parseErr(uriFormat, name, "file: without a path")
			}
			u.PINFile = p
		case strings.HasPrefix(v, "env:"):
			u.PINEnv = strings.TrimPrefix(v, "env:")
			if u.PINEnv == "" {
				return parseErr(uriFormat, name, "env: without a variable name")
			}
		default:
			return parseErr(uriFormat, name, `must be "file:/absolute/path" or "env:NAME"`)
		}
	case isQuery && name == "pin-value":
		return parseErr(uriFormat, name, "a PIN is never written in the URI; use pin-source=file:/path or pin-source=env:NAME")
	default:
		return parseErr(uriFormat, name, "%s attribute not supported (Custos uses token or slot-id, object and type; module-path and pin-source)", where)
	}
	return nil
}

// valid checks the combination of attributes in one place.
func (u *PKCS11URI) valid() error {
	switch {
	case u.Token == "" && u.SlotID == nil:
		return parseErr(uriFormat, "token", "name the token with token=LABEL or slot-id=N")
	case u.Token != "" && u.SlotID != nil:
		return parseErr(uriFormat, "token", "give token or slot-id, not both")
	case len(u.Token) > 32:
		return parseErr(uriFormat, "token", "longer than 32 bytes")
	case u.Object == "":
		return parseErr(uriFormat, "object", "missing: the label of the officer's key on the token")
	case hsm.CheckLabel(u.Object) != nil:
		return parseErr(uriFormat, "object", "must be 1 to %d bytes", hsm.MaxLabelLen)
	case u.ModulePath == "":
		return parseErr(uriFormat, "module-path", "missing: the path of the PKCS#11 library")
	case !filepath.IsAbs(u.ModulePath):
		return parseErr(uriFormat, "module-path", "%q is not an absolute path", u.ModulePath)
	case u.PINFile == "" && u.PINEnv == "":
		return parseErr(uriFormat, "pin-source", "missing: pin-source=file:/path or pin-source=env:NAME")
	case u.PINFile != "" && !filepath.IsAbs(u.PINFile):
		return parseErr(uriFormat, "pin-source", "%q is not an absolute path", u.PINFile)
	case u.PINFile == "" && !validEnvName(u.PINEnv):
		return parseErr(uriFormat, "pin-source", "%q is not an environment variable name", u.PINEnv)
	}
	return nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// String returns the URI in one canonical form: token or slot-id, object, then
// module-path and pin-source; ParsePKCS11URI of it gives u back.
func (u *PKCS11URI) String() string {
	var b strings.Builder
	b.WriteString("pkcs11:")
	if u.SlotID != nil {
		b.WriteString("slot-id=" + strconv.FormatUint(uint64(*u.SlotID), 10))
	} else {
		b.WriteString("token=" + escape(u.Token, false))
	}
	b.WriteString(";object=" + escape(u.Object, false))
	b.WriteString("?module-path=" + escape(u.ModulePath, true))
	if u.PINFile != "" {
		b.WriteString("&pin-source=file:" + escape(u.PINFile, true))
	} else {
		b.WriteString("&pin-source=env:" + escape(u.PINEnv, true))
	}
	return b.String()
}

// escape percent-encodes everything but RFC 3986 unreserved characters, and in
// query values also '/' and ':'.
func escape(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~',
			query && (c == '/' || c == ':'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
