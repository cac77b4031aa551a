package identity_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/custos-eu/custos/keysvc/identity"
)

// FuzzParseURI checks that ParseURI never panics, fails only with a
// *ParseError, and accepts only canonical URIs: an accepted input renders
// back byte for byte, and survives crypto/x509's url.Parse unchanged, so
// FromCertificate sees it as written.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"custos://prod/node/node-1?region=FR",
		"custos://eu.west_2/agent/agent-payroll?region=DE",
		"custos://c/officer/alice?region=NO",
		"custos://c/auditor/a.b?region=IS",
		"custos://c/operator/0?region=LI",
		"custos://prod/admin/n?region=FR",
		"custos://prod/node/n?region=fr",
		"custos://prod:1/node/n?region=FR",
		"custos://u@prod/node/n?region=FR",
		"custos://prod/node/a%2Fb?region=FR",
		"custos://prod/node/n?region=FR#x",
		"custos://prod/node/n/?region=FR",
		"custos://a..b/node/n?region=FR",
		"CUSTOS://prod/node/n?region=FR",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := identity.ParseURI(s)
		if err != nil {
			var pe *identity.ParseError
			if !errors.As(err, &pe) || pe.URI != s {
				t.Fatalf("ParseURI(%q): error %T %v is not a *ParseError for the input", s, err, err)
			}
			return
		}
		if id.String() != s || id.URI().String() != s {
			t.Fatalf("ParseURI(%q) = %+v renders as %q / %q", s, id, id.String(), id.URI().String())
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("ParseURI(%q) accepted an invalid identity: %v", s, err)
		}
		u, err := url.Parse(s)
		if err != nil || u.String() != s || u.Scheme != identity.Scheme || u.Host != id.Cluster {
			t.Fatalf("url.Parse(%q) = %v, %v", s, u, err)
		}
		if again, err := identity.ParseURI(u.String()); err != nil || again != id {
			t.Fatalf("through url.Parse: %+v, %v", again, err)
		}
	})
}
