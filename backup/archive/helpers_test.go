package archive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"filippo.io/age"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// localKEK unwraps with a local key (no cluster).
type localKEK struct{ key *wrapkey.Key }

func (l *localKEK) Unwrap(_ context.Context, kekID string, blob []byte, c map[string]string) (client.UnwrapResponse, error) {
	if kekID != "backups" {
		return client.UnwrapResponse{}, errors.New("wrong kek")
	}
	pt, err := l.key.Unwrap(blob, c)
	return client.UnwrapResponse{Plaintext: pt, LogIndex: 1}, err
}

type keys struct {
	rcp *custosage.OfflineRecipient
	id  *custosage.Identity
}

func newKeys(t testing.TB, archiveID string) keys {
	t.Helper()
	seed := make([]byte, wrapkey.SeedSize)
	rand.Read(seed)
	k, err := wrapkey.NewKey(seed, "backups", 1)
	if err != nil {
		t.Fatal(err)
	}
	rcp, err := custosage.NewOfflineRecipient("backups", 1, k.PublicKey(), wrapkey.Context{"dataset": "hr", "archive": archiveID})
	if err != nil {
		t.Fatal(err)
	}
	id := custosage.NewIdentity(context.Background(), &localKEK{key: k})
	id.Expect = map[string]string{"archive": archiveID}
	return keys{rcp: rcp, id: id}
}

// backup archives sources into memory.
func backup(t testing.TB, ks keys, id string, sources ...string) (*archive.Manifest, []byte, []byte) {
	t.Helper()
	var a, ix bytes.Buffer
	m, err := archive.Create(context.Background(), sources, &a, &ix, archive.CreateOptions{
		ArchiveID: id, Dataset: "hr", Classification: "confidential", Recipient: ks.rcp, ChunkSize: archive.MinChunkSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, a.Bytes(), ix.Bytes()
}

var _ age.Identity = (*custosage.Identity)(nil)
