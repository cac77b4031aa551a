package custosage_test

import (
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// Whatever DecodeContext accepts re-encodes to the same argument.
func FuzzDecodeContext(f *testing.F) {
	for _, s := range []string{"e30", "eyJhIjoiYiJ9", "eyJhcmNoaXZlIjoiYTEiLCJkYXRhc2V0IjoiaHIifQ", "W10", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		c, err := custosage.DecodeContext(arg)
		if err != nil {
			return
		}
		again, err := custosage.EncodeContext(c)
		if err != nil || again != arg {
			t.Fatalf("DecodeContext(%q) = %v; re-encodes to %q, %v", arg, c, again, err)
		}
	})
}

// ParseStanza never panics, and what it accepts is consistent.
func FuzzParseStanza(f *testing.F) {
	f.Add("backups", "1", "e30", []byte("CSTW"))
	f.Add("backups", "01", "e30=", []byte{})
	f.Fuzz(func(t *testing.T, kek, version, ctxArg string, body []byte) {
		p, err := custosage.ParseStanza(&age.Stanza{Type: custosage.StanzaType, Args: []string{kek, version, ctxArg}, Body: body})
		if err != nil {
			return
		}
		if p.KEKID != kek || wrapkey.ValidateKEKID(kek) != nil || strings.HasPrefix(version, "0") {
			t.Fatalf("accepted %q %q: %+v", kek, version, p)
		}
	})
}
