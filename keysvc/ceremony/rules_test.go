// The syntax rules this package repeats must agree with their owners:
// identity names, roles and regions (keysvc/identity) and KEK ids
// (keysvc/wrapkey). These imports are for tests only.

package ceremony_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// ruleSamples are strings around the edges of the name and id rules.
func ruleSamples() []string {
	s := []string{"", "a", "0", "-", ".", "_", "a-", "-a", "a.b", "a..b", "a_b", "A", "aB", "a b", "a/b", "é",
		"node-1", "agent-payroll", "x.y_z-0", "a\x00", "a\n", strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("a", 65), "a" + strings.Repeat(".", 61) + "a", "1.2.3", "_a", "a_", "..", "a...b"}
	for c := range 128 {
		s = append(s, "x"+string(rune(c))+"y", string(rune(c)))
	}
	return s
}

func TestNameRuleMatchesIdentity(t *testing.T) {
	for _, s := range ruleSamples() {
		want := identity.Identity{Cluster: "c", Name: s, Role: identity.RoleNode, Region: "FR"}.Validate() == nil
		if got := (ceremony.NodeRemove{ID: s}).Validate() == nil; got != want {
			t.Errorf("node id %q: valid here %v, in identity %v", s, got, want)
		}
		if got := (ceremony.OfficerRemove{ID: s}).Validate() == nil; got != want {
			t.Errorf("officer id %q: valid here %v, in identity %v", s, got, want)
		}
		wantCluster := identity.Identity{Cluster: s, Name: "n", Role: identity.RoleNode, Region: "FR"}.Validate() == nil
		p := rotate()
		p.Cluster = s
		if got := p.Validate() == nil; got != wantCluster {
			t.Errorf("cluster %q: valid here %v, in identity %v", s, got, wantCluster)
		}
	}
}

func TestKEKIDRuleMatchesWrapkey(t *testing.T) {
	for _, s := range ruleSamples() {
		want := wrapkey.ValidateKEKID(s) == nil
		if got := (ceremony.KEKRotate{KEKID: s}).Validate() == nil; got != want {
			t.Errorf("kek id %q: valid here %v, in wrapkey %v", s, got, want)
		}
	}
}

func TestRegionsMatchIdentity(t *testing.T) {
	var valid []string
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			code := string([]rune{a, b})
			got := (ceremony.RegionsSet{Regions: []string{code}}).Validate() == nil
			if got != identity.IsEUEEA(code) {
				t.Errorf("region %s: valid here %v, in identity %v", code, got, !got)
			}
			if got {
				valid = append(valid, code)
			}
		}
	}
	if !slices.Equal(valid, identity.EUEEARegions()) {
		t.Fatalf("regions %v, identity has %v", valid, identity.EUEEARegions())
	}
	for _, code := range []string{"fr", "Fr", "FRA", "F", "", "EL", "UK", "GB", "CH", "EU"} {
		if (ceremony.RegionsSet{Regions: []string{code}}).Validate() == nil {
			t.Errorf("region %q accepted", code)
		}
	}
}

func TestRolesMatchIdentity(t *testing.T) {
	for _, r := range append(identity.Roles(), "admin", "Agent", "", "agents") {
		p := ceremony.Policy{Threshold: 2, Wrap: ceremony.Access{Roles: []string{string(r)}, Regions: []string{"FR"}}}
		if got := p.Validate() == nil; got != identity.Role(r).Valid() {
			t.Errorf("role %q: valid here %v, in identity %v", r, got, !got)
		}
	}
}
