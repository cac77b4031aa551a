package kek_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/kek"
)

// A record rebuilt from its wire fields is the record: it verifies
// against the version and the officers open their shares with it.
func TestParseEscrowRecord(t *testing.T) {
	offs := newOfficers(t, "alice", "bob", "carol")
	v, _, _, rec := escrowed(t, 2, 3, 2, offs)
	c, err := rec.Commitments.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	link, err := rec.Link.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := kek.ParseEscrowRecord(rec.Cluster, rec.Threshold, rec.Officers, c, link, rec.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != rec.Cluster || got.Threshold != rec.Threshold || !slices.Equal(got.Officers, rec.Officers) || !got.Link.IsEqual(rec.Link) {
		t.Errorf("parsed record %+v, want %+v", got, rec)
	}
	if err := kek.VerifyEscrowRecord(v, got); err != nil {
		t.Fatalf("the parsed record does not verify: %v", err)
	}
	openEscrow(t, v, got, offs[0], offs[2])

	if _, err := kek.ParseEscrowRecord(rec.Cluster, rec.Threshold, rec.Officers, c, link[:5], rec.Sealed); err == nil || !strings.Contains(err.Error(), "escrow link") {
		t.Errorf("a short link: %v", err)
	}
	if _, err := kek.ParseEscrowRecord(rec.Cluster, rec.Threshold, rec.Officers, c[:len(c)-1], link, rec.Sealed); err == nil {
		t.Error("cut commitments parsed")
	}
}
