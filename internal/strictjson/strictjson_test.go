package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/custos-eu/custos/internal/strictjson"
)

type request struct {
	KEKID   string            `json:"kek_id"`
	Version uint32            `json:"version"`
	Share   []byte            `json:"share"`
	Context map[string]string `json:"context"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		body      string
		malformed bool // else invalid; neither if want is set
		want      *request
	}{
		{body: `{"kek_id":"payroll","version":2,"share":"AAE=","context":{"dataset":"hr"}}`,
			want: &request{KEKID: "payroll", Version: 2, Share: []byte{0, 1}, Context: map[string]string{"dataset": "hr"}}},
		{body: " {} \n", want: &request{}},
		{body: `{"kek_id":"\u00e9\ud83d\ude00\"\\"}`, want: &request{KEKID: "é😀\"\\"}},
		{body: `{"kek_id":"\\ud800"}`, want: &request{KEKID: `\ud800`}}, // an escaped backslash, then text
		{body: "{\"kek_id\":\"caf\xc3\xa9\"}", want: &request{KEKID: "café"}},

		{body: ``, malformed: true},
		{body: "  \n", malformed: true},
		{body: `{`, malformed: true},
		{body: `{"kek_id":}`, malformed: true},
		{body: `{} {}`, malformed: true},
		{body: `{}x`, malformed: true},
		{body: "{\"kek_id\":\"a\xffb\"}", malformed: true},
		{body: "{\"kek_id\":\"\xed\xa0\x80\"}", malformed: true}, // a surrogate in raw "UTF-8"
		{body: "\xff{}", malformed: true},
		{body: "{}\xff", malformed: true},
		{body: `{"kek_id":"\ud800"}`, malformed: true},
		{body: `{"kek_id":"\uDBFFx"}`, malformed: true},
		{body: `{"kek_id":"\udc00"}`, malformed: true},
		{body: `{"kek_id":"\ud800\u0041"}`, malformed: true},
		{body: `{"kek_id":"\ud800\ud800"}`, malformed: true},
		{body: `{"kek_id":"\ude00\ud83d"}`, malformed: true},
		{body: `{"\ud800":1}`, malformed: true}, // in a key too
		{body: `{"kek_id":"x\\\ud800"}`, malformed: true},

		{body: `null`},
		{body: `[]`},
		{body: `"x"`},
		{body: `{"kek_id":1}`},
		{body: `{"version":-1}`},
		{body: `{"version":4294967296}`},
		{body: `{"version":1.5}`},
		{body: `{"share":"!!"}`},
		{body: `{"context":{"a":1}}`},
		{body: `{"other":1}`},
	} {
		var got request
		err := strictjson.Decode([]byte(tc.body), &got)
		var (
			me *strictjson.MalformedError
			ie *strictjson.InvalidError
		)
		switch {
		case tc.want != nil:
			if err != nil || !equal(got, *tc.want) {
				t.Errorf("%q: %+v, %v; want %+v", tc.body, got, err, *tc.want)
			}
		case tc.malformed:
			if !errors.As(err, &me) || me.Offset < 0 || me.Offset > int64(len(tc.body)) {
				t.Errorf("%q: %v, want a MalformedError", tc.body, err)
			}
		default:
			if !errors.As(err, &ie) {
				t.Errorf("%q: %v, want an InvalidError", tc.body, err)
			}
		}
	}
}

func equal(a, b request) bool {
	return a.KEKID == b.KEKID && a.Version == b.Version && bytes.Equal(a.Share, b.Share) &&
		fmt.Sprint(a.Context) == fmt.Sprint(b.Context)
}

// No error quotes the body: a secret in a malformed or invalid body stays
// out of messages (and so out of logs).
func TestErrorsDoNotQuoteTheBody(t *testing.T) {
	const secret = "c2VjcmV0IHNoYXJl"
	for _, body := range []string{
		`{"share":"` + secret + `"` + "\x01}",
		`{"share":"` + secret + `",}`,
		`{"share":"` + secret + `"} ` + secret,
		"{\"share\":\"" + secret + "\xff\"}",
		`{"share":"` + secret + `\ud800"}`,
		`{"share":"` + secret + `!"}`,
		`{"kek_id":` + strings.Repeat("7", 20) + `}`,
		`{"version":"` + secret + `"}`,
		`"` + secret + `"`,
	} {
		var r request
		err := strictjson.Decode([]byte(body), &r)
		if err == nil {
			t.Fatalf("%q decoded", body)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "7777") {
			t.Errorf("%q: error %q quotes the body", body, err)
		}
	}
}

func TestMalformedReasons(t *testing.T) {
	for body, want := range map[string]string{
		``:                  "malformed JSON at byte 0: no JSON value",
		`{"a":`:             "malformed JSON at byte 5: unexpected end of input",
		`{} {}`:             "malformed JSON at byte 3: data after the JSON value",
		`{"a":1,}`:          "malformed JSON at byte 7: syntax error",
		"{\"a\":\"\xc3\"}":  "malformed JSON at byte 6: invalid UTF-8",
		`{"a":"xy\udfff"}`:  "malformed JSON at byte 8: lone UTF-16 surrogate escape",
		`{"a":"\ud800\n"}`:  "malformed JSON at byte 6: lone UTF-16 surrogate escape",
		`{"a":"\ud800\\n"}`: "malformed JSON at byte 6: lone UTF-16 surrogate escape",
	} {
		if err := strictjson.Check([]byte(body)); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", body, err, want)
		}
	}
}

// FuzzCheck: Check never panics, accepts only what encoding/json reads
// without loss, and agrees with two independent oracles: the utf8 package
// for raw bytes in a string, and the utf16 package for a string written
// entirely in \u escapes.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `[1,"\\u0041"]`,
		`"\udbff\udfff"`, `{"a":"b"} x`, "\"\xed\xa0\x80\"", `{"a":"\u00e9\/\b"}`, "\xd8\x00\xdc\x00", "\xdc\x00", "\x00\x41\xd8\x3d"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.Check(data)
		var me *strictjson.MalformedError
		if err != nil && (!errors.As(err, &me) || me.Offset < 0 || me.Offset > int64(len(data))) {
			t.Fatalf("%q: %v", data, err)
		}
		if err == nil {
			if !json.Valid(data) || !utf8.Valid(data) {
				t.Fatalf("accepted %q", data)
			}
			// What encoding/json reads, it writes back as a document Check
			// accepts, which reads back the same.
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("accepted %q: %v", data, err)
			}
			out, err := json.Marshal(v)
			if err != nil || strictjson.Check(out) != nil {
				t.Fatalf("%q: re-encoded %q: %v %v", data, out, err, strictjson.Check(out))
			}
		}

		// data as text in one string: accepted iff valid UTF-8, and read
		// back byte for byte.
		text := bytes.Clone(data)
		for i, c := range text {
			if c == '"' || c == '\\' || c < 0x20 {
				text[i] = 'x' // ASCII for ASCII: the bytes stay valid UTF-8 or not
			}
		}
		doc := append(append([]byte(`"`), text...), '"')
		if err := strictjson.Check(doc); (err == nil) != utf8.Valid(text) {
			t.Fatalf("%q: %v, valid UTF-8: %v", doc, err, utf8.Valid(text))
		}
		if utf8.Valid(text) {
			var s string
			if err := json.Unmarshal(doc, &s); err != nil || s != string(text) {
				t.Fatalf("%q read as %q: %v", doc, s, err)
			}
		}

		// data as UTF-16 code units, each written as a \u escape (upper
		// or lower case hex by the unit's low bit): accepted iff no
		// surrogate is lone, and read back unit for unit.
		units := make([]uint16, len(data)/2)
		var esc strings.Builder
		esc.WriteByte('"')
		for i := range units {
			units[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
			format := `\u%04x`
			if units[i]&1 == 1 {
				format = `\u%04X`
			}
			fmt.Fprintf(&esc, format, units[i])
		}
		esc.WriteByte('"')
		wellFormed := slices.Equal(utf16.Encode(utf16.Decode(units)), units)
		if err := strictjson.Check([]byte(esc.String())); (err == nil) != wellFormed {
			t.Fatalf("%s: %v, well-formed UTF-16: %v", esc.String(), err, wellFormed)
		}
		if wellFormed {
			var s string
			if err := json.Unmarshal([]byte(esc.String()), &s); err != nil || !slices.Equal(utf16.Encode([]rune(s)), units) {
				t.Fatalf("%s read as %q: %v", esc.String(), s, err)
			}
		}
	})
}
