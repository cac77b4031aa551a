package identity_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/identity"
)

func TestIssueAndParseEveryRole(t *testing.T) {
	ca := newTestCA(t, "prod")
	for _, role := range identity.Roles() {
		t.Run(string(role), func(t *testing.T) {
			id := identity.Identity{Cluster: "prod", Name: "x-" + string(role), Role: role, Region: "FR"}
			var opts identity.IssueOptions
			if role == identity.RoleNode {
				opts = localhost
			}
			certPEM, keyPEM, err := ca.Issue(id, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
				t.Errorf("key is not PKCS #8 PEM:\n%s", keyPEM)
			}
			cert := parsePEM(t, certPEM)
			got, err := identity.FromCertificate(cert)
			if err != nil {
				t.Fatal(err)
			}
			if got != id {
				t.Fatalf("FromCertificate = %+v, want %+v", got, id)
			}
			if len(cert.URIs) != 1 || cert.URIs[0].String() != id.String() {
				t.Errorf("URI SANs %v, want just %s", cert.URIs, id)
			}
			// The certificate chains to the CA for the uses its role needs.
			pool := x509.NewCertPool()
			pool.AddCert(ca.Certificate())
			verify := func(u x509.ExtKeyUsage) error {
				_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}})
				return err
			}
			if err := verify(x509.ExtKeyUsageClientAuth); err != nil {
				t.Errorf("not valid for client auth: %v", err)
			}
			err = verify(x509.ExtKeyUsageServerAuth)
			if role == identity.RoleNode {
				if err != nil {
					t.Errorf("node not valid for server auth: %v", err)
				}
				if !slices.Equal(cert.DNSNames, []string{"localhost"}) || len(cert.IPAddresses) != 1 ||
					!cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
					t.Errorf("node SANs: DNS %v IP %v", cert.DNSNames, cert.IPAddresses)
				}
				if err := cert.VerifyHostname("127.0.0.1"); err != nil {
					t.Error(err)
				}
			} else if err == nil {
				t.Errorf("%s certificate is valid for server auth", role)
			}
			if cert.IsCA {
				t.Error("leaf is a CA")
			}
		})
	}
}

func TestParseURIAccepts(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want identity.Identity
	}{
		{"custos://prod/node/node-1?region=FR", identity.Identity{Cluster: "prod", Role: "node", Name: "node-1", Region: "FR"}},
		{"custos://eu.west_2/agent/agent-payroll?region=DE", identity.Identity{Cluster: "eu.west_2", Role: "agent", Name: "agent-payroll", Region: "DE"}},
		{"custos://0/officer/a.b-c_d?region=NO", identity.Identity{Cluster: "0", Role: "officer", Name: "a.b-c_d", Region: "NO"}},
		{"custos://c/auditor/" + strings.Repeat("z", 63) + "?region=LI", identity.Identity{Cluster: "c", Role: "auditor", Name: strings.Repeat("z", 63), Region: "LI"}},
		{"custos://" + strings.Repeat("9", 63) + "/operator/bob?region=IS", identity.Identity{Cluster: strings.Repeat("9", 63), Role: "operator", Name: "bob", Region: "IS"}},
	} {
		got, err := identity.ParseURI(tc.uri)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.uri, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tc.uri, got, tc.want)
		}
		if got.String() != tc.uri || got.URI().String() != tc.uri {
			t.Errorf("%q renders as %q / %q", tc.uri, got.String(), got.URI().String())
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", got, err)
		}
	}
}

func TestParseURIRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct{ uri, why string }{
		{"", "start"},
		{"https://prod/node/n?region=FR", "start"},
		{"CUSTOS://prod/node/n?region=FR", "start"},
		{"custos:prod/node/n?region=FR", "start"},
		{"custos:///node/n?region=FR", "cluster"},
		{"custos://prod/node/n", "no ?region"},
		{"custos://prod/node/n?", "query"},
		{"custos://prod/node/n?region=", "region"},
		{"custos://prod/node/n?region=fr", "region"},
		{"custos://prod/node/n?region=GB", "region"},
		{"custos://prod/node/n?region=CH", "region"},
		{"custos://prod/node/n?region=EL", "region"},
		{"custos://prod/node/n?region=FRA", "region"},
		{"custos://prod/node/n?region=FR&region=DE", "region"},
		{"custos://prod/node/n?region=FR&x=1", "region"},
		{"custos://prod/node/n?x=1&region=FR", "query"},
		{"custos://prod/node/n?Region=FR", "query"},
		{"custos://prod/node/n?region=FR#frag", "region"},
		{"custos://prod/node/n?region=FR?", "region"},
		{"custos://prod/admin/n?region=FR", "role"},
		{"custos://prod/Node/n?region=FR", "role"},
		{"custos://prod//n?region=FR", "role"},
		{"custos://prod/node?region=FR", "segments"},
		{"custos://prod/node/?region=FR", "name"},
		{"custos://prod/node/n/?region=FR", "segments"},
		{"custos://prod/node/a/b?region=FR", "segments"},
		{"custos://prod/node/Alice?region=FR", "name"},
		{"custos://prod/node/al%69ce?region=FR", "name"},
		{"custos://prod/node/al ice?region=FR", "name"},
		{"custos://prod/node/alice@hr?region=FR", "name"},
		{"custos://prod/node/é?region=FR", "name"},
		{"custos://prod/node/-n?region=FR", "name"},
		{"custos://prod/node/n.?region=FR", "name"},
		{"custos://prod/node/..?region=FR", "name"},
		{"custos://prod/node/a..b?region=FR", "name"},
		{"custos://prod/node/" + long + "?region=FR", "name"},
		{"custos://Prod/node/n?region=FR", "cluster"},
		{"custos://prod:443/node/n?region=FR", "cluster"},
		{"custos://u@prod/node/n?region=FR", "cluster"},
		{"custos://prod./node/n?region=FR", "cluster"},
		{"custos://.prod/node/n?region=FR", "cluster"},
		{"custos://a..b/node/n?region=FR", "cluster"},
		{"custos://[::1]/node/n?region=FR", "cluster"},
		{"custos://" + long + "/node/n?region=FR", "cluster"},
		{" custos://prod/node/n?region=FR", "start"},
		{"custos://prod/node/n?region=FR\n", "region"},
	} {
		id, err := identity.ParseURI(tc.uri)
		if err == nil {
			t.Errorf("ParseURI(%q) = %+v, want an error", tc.uri, id)
			continue
		}
		var pe *identity.ParseError
		if !errors.As(err, &pe) || pe.URI != tc.uri {
			t.Errorf("ParseURI(%q): error %T %v is not a *ParseError for this URI", tc.uri, err, err)
		}
		if msg := err.Error(); pe == nil || !strings.Contains(pe.Reason, tc.why) ||
			!strings.HasPrefix(msg, "identity: bad custos URI") ||
			!strings.HasSuffix(msg, "(expected custos://<cluster>/<role>/<name>?region=XX)") {
			t.Errorf("ParseURI(%q): message %q does not say %q and the expected form", tc.uri, msg, tc.why)
		}
		if id != (identity.Identity{}) {
			t.Errorf("ParseURI(%q) returned %+v with its error", tc.uri, id)
		}
	}
}

func TestFromCertificate(t *testing.T) {
	uris := func(ss ...string) []*url.URL {
		var out []*url.URL
		for _, s := range ss {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u)
		}
		return out
	}
	good := "custos://prod/agent/a1?region=SE"
	want := identity.Identity{Cluster: "prod", Role: identity.RoleAgent, Name: "a1", Region: "SE"}
	for _, tc := range []struct {
		name    string
		tmpl    x509.Certificate
		wantErr string // "" for success
	}{
		{"only", x509.Certificate{URIs: uris(good)}, ""},
		{"beside a SPIFFE ID and DNS names", x509.Certificate{
			URIs: uris("spiffe://example.org/a1", good), DNSNames: []string{"a1.example"}}, ""},
		{"common name is not read", x509.Certificate{URIs: uris(good)}, ""},
		{"none", x509.Certificate{DNSNames: []string{"custos://prod/agent/a1?region=SE"}}, "no custos identity"},
		{"other schemes only", x509.Certificate{URIs: uris("spiffe://prod/agent/a1")}, "no custos identity"},
		{"two", x509.Certificate{URIs: uris(good, "custos://prod/agent/a2?region=SE")}, "2 custos URI SANs"},
		{"same twice", x509.Certificate{URIs: uris(good, good)}, "2 custos URI SANs"},
		{"port", x509.Certificate{URIs: uris("custos://prod:1/agent/a1?region=SE")}, "cluster"},
		{"user info", x509.Certificate{URIs: uris("custos://x@prod/agent/a1?region=SE")}, "cluster"},
		{"escaped", x509.Certificate{URIs: uris("custos://prod/agent/%61%31?region=SE")}, "name"},
		{"fragment", x509.Certificate{URIs: uris(good + "#x")}, "region"},
		{"non-EEA", x509.Certificate{URIs: uris("custos://prod/agent/a1?region=US")}, "region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := tc.tmpl
			tmpl.Subject.CommonName = "custos://other/node/n?region=FR"
			got, err := identity.FromCertificate(selfSigned(t, &tmpl))
			if tc.wantErr == "" {
				if err != nil || got != want {
					t.Fatalf("FromCertificate = %+v, %v; want %+v", got, err, want)
				}
				return
			}
			if tc.wantErr == "no custos identity" {
				if !errors.Is(err, identity.ErrNoIdentity) {
					t.Fatalf("FromCertificate = %+v, %v; want ErrNoIdentity", got, err)
				}
				return
			}
			var pe *identity.ParseError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tc.wantErr) {
				t.Fatalf("FromCertificate = %+v, %v; want a *ParseError saying %q", got, err, tc.wantErr)
			}
		})
	}
	if _, err := identity.FromCertificate(nil); err == nil {
		t.Error("FromCertificate(nil) succeeded")
	}
	const wantMsg = "identity: certificate has no custos identity (expected a URI SAN custos://<cluster>/<role>/<name>?region=XX)"
	if identity.ErrNoIdentity.Error() != wantMsg {
		t.Errorf("ErrNoIdentity = %q", identity.ErrNoIdentity)
	}
}

func TestValidate(t *testing.T) {
	ok := identity.Identity{Cluster: "c", Name: "n", Role: identity.RoleOperator, Region: "PT"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		id    identity.Identity
	}{
		{"cluster", identity.Identity{}},
		{"role", identity.Identity{Cluster: "c", Name: "n", Role: "root", Region: "PT"}},
		{"cluster", identity.Identity{Cluster: "C", Name: "n", Role: identity.RoleNode, Region: "PT"}},
		{"name", identity.Identity{Cluster: "c", Name: "n/m", Role: identity.RoleNode, Region: "PT"}},
		{"region", identity.Identity{Cluster: "c", Name: "n", Role: identity.RoleNode, Region: "pt"}},
	} {
		err := tc.id.Validate()
		var pe *identity.ParseError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Reason, tc.field+" ") ||
			!strings.HasPrefix(err.Error(), "identity: "+tc.field) {
			t.Errorf("Validate(%+v) = %v, want a *ParseError about the %s", tc.id, err, tc.field)
		}
	}
}

func TestRegions(t *testing.T) {
	want := strings.Fields(`AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO`)
	got := identity.EUEEARegions()
	if len(got) != 30 || !slices.IsSorted(got) {
		t.Fatalf("EUEEARegions() = %v: want 30 sorted codes", got)
	}
	for _, c := range want {
		if !identity.IsEUEEA(c) || !slices.Contains(got, c) {
			t.Errorf("%s missing", c)
		}
	}
	for _, c := range []string{"", "fr", "Fr", "GB", "UK", "CH", "EL", "XI", "US", "EU", "FRA", "F"} {
		if identity.IsEUEEA(c) {
			t.Errorf("IsEUEEA(%q) = true", c)
		}
	}
	got[0] = "GB"
	if identity.IsEUEEA("GB") || identity.EUEEARegions()[0] != "AT" {
		t.Error("EUEEARegions returns the package's own slice")
	}
	r := identity.Roles()
	r[0] = "root"
	if identity.Role("root").Valid() || identity.Roles()[0] != identity.RoleNode {
		t.Error("Roles returns the package's own slice")
	}
}

func TestFingerprint(t *testing.T) {
	cert := selfSigned(t, &x509.Certificate{})
	sum := sha256.Sum256(cert.Raw)
	fp := identity.Fingerprint(cert)
	if fp != "sha256:"+hex.EncodeToString(sum[:]) || len(fp) != 71 || strings.ToLower(fp) != fp {
		t.Errorf("Fingerprint = %q", fp)
	}
	if identity.Fingerprint(selfSigned(t, &x509.Certificate{})) == fp {
		t.Error("two certificates, one fingerprint")
	}
}

func TestLogValue(t *testing.T) {
	var buf bytes.Buffer
	id := identity.Identity{Cluster: "prod", Name: "alice", Role: identity.RoleOfficer, Region: "AT"}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "peer", id)
	if !strings.Contains(buf.String(), "peer.cluster=prod peer.role=officer peer.name=alice peer.region=AT") {
		t.Errorf("logged %q", buf.String())
	}
}
