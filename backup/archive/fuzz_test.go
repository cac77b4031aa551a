package archive_test

import (
	"testing"

	"github.com/custos-eu/custos/backup/archive"
)

// ParseManifest never panics; what it accepts survives a round trip.
func FuzzParseManifest(f *testing.F) {
	m := &archive.Manifest{Format: archive.ManifestFormat, ArchiveID: testID, Dataset: "hr", KEK: archive.KEKRef{ID: "backups", Version: 1},
		Archive: archive.Part{Size: 10, SHA256: hexSum(nil)}, Index: archive.Part{Size: 5, SHA256: hexSum(nil)}, ChunkSize: archive.DefaultChunkSize}
	b, _ := m.Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := archive.ParseManifest(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.ParseManifest(again); err != nil {
			t.Fatalf("re-marshalled manifest refused: %v", err)
		}
	})
}
