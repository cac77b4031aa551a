package main

import (
	"strings"
	"testing"
)

func TestParseBatch(t *testing.T) {
	for _, tc := range []struct {
		name, in, field string
		items           int
		err             string
	}{
		{"lines", "{\"plaintext\": \"AQ==\"}\n\n{\"plaintext\": \"Ag==\", \"context\": {\"a\": \"b\"}}\n", "plaintext", 2, ""},
		{"array", " [{\"wrapped\": \"AQ==\"}, {\"wrapped\": \"Ag==\"}]\n", "wrapped", 2, ""},
		{"crlf", "{\"plaintext\": \"AQ==\"}\r\n{\"plaintext\": \"Ag==\"}\r\n", "plaintext", 2, ""},
		{"empty", " \n", "plaintext", 0, "batch: no items"},
		{"empty array", "[]", "plaintext", 0, "batch: no items"},
		{"unknown field", "{\"plaintxt\": \"AQ==\"}", "plaintext", 0, `batch line 1: json: unknown field "plaintxt"`},
		{"two objects a line", "{\"plaintext\": \"AQ==\"} {\"plaintext\": \"AQ==\"}", "plaintext", 0, "batch line 1: more than one JSON object"},
		{"after array", "[{\"plaintext\": \"AQ==\"}] {}", "plaintext", 0, "data after the JSON array"},
		{"no data", "{\"context\": {\"a\": \"b\"}}", "plaintext", 0, `batch item 0: no "plaintext"`},
		{"wrong field", "{\"plaintext\": \"AQ==\", \"wrapped\": \"AQ==\"}", "wrapped", 0, `batch item 0: "plaintext" does not belong in this batch`},
		{"not base64", "{\"plaintext\": \"%%%\"}", "plaintext", 0, "batch line 1:"},
		{"not json", "plaintext=AQ==", "plaintext", 0, "batch line 1:"},
	} {
		items, err := parseBatch([]byte(tc.in), tc.field)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || len(items) != tc.items {
			t.Errorf("%s: %d items, err %v; want %d", tc.name, len(items), err, tc.items)
		}
	}
}

// FuzzParseBatch: a batch file is outside bytes. parseBatch never panics,
// and what it accepts has, in every item, the field asked for and not
// the other.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte("{\"plaintext\": \"AQ==\"}\n{\"plaintext\": \"Ag==\", \"context\": {\"a\": \"b\"}}\n"), false)
	f.Add([]byte("[{\"wrapped\": \"AQ==\"}]"), true)
	f.Add([]byte("[{\"wrapped\": \"AQ==\", \"plaintext\": \"AQ==\"}]"), true)
	f.Fuzz(func(t *testing.T, in []byte, wrapped bool) {
		field := "plaintext"
		if wrapped {
			field = "wrapped"
		}
		items, err := parseBatch(in, field)
		if err != nil {
			if items != nil {
				t.Fatal("items with an error")
			}
			return
		}
		if len(items) == 0 {
			t.Fatal("no items and no error")
		}
		for _, it := range items {
			if wrapped && (len(it.Wrapped) == 0 || len(it.Plaintext) != 0) || !wrapped && (len(it.Plaintext) == 0 || len(it.Wrapped) != 0) {
				t.Fatalf("accepted item %+v for %s", it, field)
			}
		}
	})
}
