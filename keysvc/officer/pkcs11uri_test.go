package officer_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/custos-eu/custos/keysvc/officer"
)

func slot(n uint) *uint { return &n }

func TestParsePKCS11URI(t *testing.T) {
	const mod = "/usr/lib/softhsm/libsofthsm2.so"
	cases := []struct {
		in        string
		want      officer.PKCS11URI
		canonical string
	}{
		{
			"pkcs11:token=officer-alice;object=custos-officer?module-path=" + mod + "&pin-source=file:/path/pin",
			officer.PKCS11URI{Token: "officer-alice", Object: "custos-officer", ModulePath: mod, PINFile: "/path/pin"},
			"pkcs11:token=officer-alice;object=custos-officer?module-path=" + mod + "&pin-source=file:/path/pin",
		},
		{
			"PKCS11:object=custos%20officer;type=private;slot-id=0042?pin-source=env:ALICE_PIN&module-path=%2Fopt%2Fp11.so",
			officer.PKCS11URI{SlotID: slot(42), Object: "custos officer", ModulePath: "/opt/p11.so", PINEnv: "ALICE_PIN"},
			"pkcs11:slot-id=42;object=custos%20officer?module-path=/opt/p11.so&pin-source=env:ALICE_PIN",
		},
		{
			"pkcs11:token=A%3Bb%3Fc;object=o?module-path=/m.so&pin-source=file:///home/alice/pin%20file",
			officer.PKCS11URI{Token: "A;b?c", Object: "o", ModulePath: "/m.so", PINFile: "/home/alice/pin file"},
			"pkcs11:token=A%3Bb%3Fc;object=o?module-path=/m.so&pin-source=file:/home/alice/pin%20file",
		},
	}
	for _, c := range cases {
		u, err := officer.ParsePKCS11URI(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if !reflect.DeepEqual(*u, c.want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", c.in, *u, c.want)
		}
		if got := u.String(); got != c.canonical {
			t.Fatalf("String() = %s, want %s", got, c.canonical)
		}
		again, err := officer.ParsePKCS11URI(u.String())
		if err != nil || !reflect.DeepEqual(again, u) {
			t.Fatalf("String() does not parse back: %v", err)
		}
	}
}

func TestParsePKCS11URIRejects(t *testing.T) {
	const q = "?module-path=/m.so&pin-source=env:PIN"
	cases := []struct{ in, field string }{
		{"", ""},
		{"pkcs12:token=t;object=o" + q, ""},
		{"token=t;object=o" + q, ""},
		{"pkcs11:token=t;object=o" + q + "#frag", ""},
		{"pkcs11:token=t;object" + q, ""},
		{"pkcs11:token=t;;object=o" + q, ""},
		{"pkcs11:token=t;object=o;object=p" + q, "object"},
		{"pkcs11:token=t;object=o" + q + "&pin-source=env:X", "pin-source"},
		{"pkcs11:object=o" + q, "token"},
		{"pkcs11:token=t;slot-id=1;object=o" + q, "token"},
		{"pkcs11:token=" + string(make([]byte, 33)) + ";object=o" + q, "token"},
		{"pkcs11:token=t" + q, "object"},
		{"pkcs11:token=t;object=%zz" + q, "object"},
		{"pkcs11:token=t;object=a%00b" + q, "object"},
		{"pkcs11:slot-id=-1;object=o" + q, "slot-id"},
		{"pkcs11:slot-id=0x1;object=o" + q, "slot-id"},
		{"pkcs11:slot-id=99999999999999999999999;object=o" + q, "slot-id"},
		{"pkcs11:token=t;object=o;type=public" + q, "type"},
		{"pkcs11:token=t;object=o;id=%01" + q, "id"},
		{"pkcs11:token=t;object=o;serial=1234" + q, "serial"},
		{"pkcs11:token=t;object=o?module-name=softhsm2&pin-source=env:PIN", "module-name"},
		{"pkcs11:token=t;object=o?pin-source=env:PIN", "module-path"},
		{"pkcs11:token=t;object=o?module-path=lib.so&pin-source=env:PIN", "module-path"},
		{"pkcs11:token=t;object=o?module-path=/m.so", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-value=1234", "pin-value"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=file:pin", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=file:", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=file://host/pin", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=env:", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=env:1PIN", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=|/bin/getpin", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&pin-source=/etc/pin", "pin-source"},
		{"pkcs11:token=t;object=o?module-path=/m.so&token=t&pin-source=env:P", "token"},
	}
	for _, c := range cases {
		u, err := officer.ParsePKCS11URI(c.in)
		var perr *officer.ParseError
		if !errors.As(err, &perr) {
			t.Errorf("%q: %v, %v; want a *ParseError", c.in, u, err)
			continue
		}
		if perr.Format != "pkcs11 uri" || perr.Field != c.field {
			t.Errorf("%q: %v: field %q, want %q", c.in, err, perr.Field, c.field)
		}
	}
}
