package policy_test

import (
	"bytes"
	"testing"

	"github.com/custos-eu/custos/backup/policy"
)

// Parse never panics; Decide on any accepted policy never panics and
// never allows an eu-only dataset outside the EU/EEA.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[[dataset]]\nname = 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := policy.Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, d := range p.Datasets {
			for _, tg := range p.Targets {
				dec, err := p.Decide(d.Name, tg.Name)
				if err == nil && d.Residency == policy.EUOnly && dec.OutsideEU {
					t.Fatalf("eu-only %s allowed to %s (%s/%s)", d.Name, tg.Name, tg.Region, tg.Jurisdiction)
				}
			}
		}
	})
}
