// Package testvectors is the shared harness for the known-answer vector
// files under testdata/: the -update flag, a hex byte-string JSON type,
// strict loading and the exact formatting the files are written in.
// It is imported only from _test.go files.
package testvectors

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "regenerate known-answer vectors in testdata/")

// Updating reports whether the test run was asked to regenerate its vector
// files (-update).
func Updating() bool { return *update }

// Hex is a byte string that is a lowercase hex string in JSON.
type Hex []byte

// MarshalJSON encodes h as a lowercase hex string.
func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON decodes a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

// Load decodes the vector file at path into v and returns its raw bytes.
// A field v does not know, or anything after the top-level value, fails
// the test.
func Load(t testing.TB, path string, v any) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: data after the vectors", path)
	}
	return raw
}

type format struct {
	indent     string
	escapeHTML bool
}

// An Option changes how Marshal and Write format a vector file.
type Option func(*format)

// IndentTabs indents with tabs instead of two spaces.
func IndentTabs() Option { return func(f *format) { f.indent = "\t" } }

// NoEscapeHTML writes <, > and & as themselves instead of as \u003c,
// \u003e and \u0026.
func NoEscapeHTML() Option { return func(f *format) { f.escapeHTML = false } }

// Marshal formats v as a vector file: indented by two spaces (see
// IndentTabs), HTML characters escaped as json.Marshal does (see
// NoEscapeHTML), and a trailing newline.
func Marshal(t testing.TB, v any, opts ...Option) []byte {
	t.Helper()
	f := format{indent: "  ", escapeHTML: true}
	for _, o := range opts {
		o(&f)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(f.escapeHTML)
	enc.SetIndent("", f.indent)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Write writes v to path, formatted by Marshal.
func Write(t testing.TB, path string, v any, opts ...Option) {
	t.Helper()
	b := Marshal(t, v, opts...)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
