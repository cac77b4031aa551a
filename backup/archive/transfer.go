// The transfer entry: the key-op log's record of an archive, which a
// restore trusts instead of the manifest beside the archive.

package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Errors of CheckTransfer and of the agent's proof of a manifest against
// the log; each is also an ErrIntegrity.
var (
	// ErrTransferMissing: the manifest names no transfer entry, or the log
	// has none of the caller's at the index it names.
	ErrTransferMissing = fmt.Errorf("%w: transfer_missing", ErrIntegrity)
	// ErrTransferMismatch: the transfer entry describes another archive
	// (ids, dataset, KEK, sizes or hashes differ from the manifest's).
	ErrTransferMismatch = fmt.Errorf("%w: transfer_mismatch", ErrIntegrity)
	// ErrTransferUnproved: the entry could not be proved in the log
	// (checkpoint, consistency or inclusion failed).
	ErrTransferUnproved = fmt.Errorf("%w: transfer_unproved", ErrIntegrity)
)

// Details of a transfer entry that bind the archive (besides the target,
// region, policy decision and wrap mode the agent also records).
const (
	detailArchive        = "archive"
	detailDataset        = "dataset"
	detailSHA256         = "sha256"
	detailSize           = "size"
	detailIndexSHA256    = "index_sha256"
	detailIndexSize      = "index_size"
	detailManifestSHA256 = "manifest_sha256"
)

// BodySHA256 is the hex SHA-256 of m's encoding without its receipt: what
// the transfer entry records of the manifest, which is written before the
// entry's index is known.
func (m *Manifest) BodySHA256() (string, error) {
	body := *m
	body.Receipt = nil
	b, err := body.Marshal()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// TransferDetails are the details of the transfer entry that bind m: the
// archive id and dataset, both ciphertexts' sizes and SHA-256, and the
// manifest's (BodySHA256). The KEK goes in the entry's own fields.
func (m *Manifest) TransferDetails() (map[string]string, error) {
	body, err := m.BodySHA256()
	if err != nil {
		return nil, err
	}
	return map[string]string{
		detailArchive:        m.ArchiveID,
		detailDataset:        m.Dataset,
		detailSHA256:         m.Archive.SHA256,
		detailSize:           strconv.FormatInt(m.Archive.Size, 10),
		detailIndexSHA256:    m.Index.SHA256,
		detailIndexSize:      strconv.FormatInt(m.Index.Size, 10),
		detailManifestSHA256: body,
	}, nil
}

// CheckTransfer checks that e, read from the log at the index m's receipt
// names, is the ok transfer entry of exactly this archive: same index,
// archive id, dataset, KEK id and version, archive size and SHA-256, and,
// when e records them, index size and SHA-256 and manifest hash. An entry
// of an earlier release records no index or manifest hash: legacy is then
// true, and the archive is still bound (its hash is in the log, and every
// file it holds must match the index record for record). Failures wrap
// ErrTransferMissing or ErrTransferMismatch.
func (m *Manifest) CheckTransfer(e ledger.Entry) (legacy bool, err error) {
	if m.Receipt == nil {
		return false, fmt.Errorf("%w: the manifest names no transfer entry", ErrTransferMissing)
	}
	if e.Index != m.Receipt.LogIndex || e.Type != client.AttestTransfer || e.Outcome != ledger.OutcomeOK {
		return false, fmt.Errorf("%w: log entry %d is %s (%s), not the transfer the manifest names", ErrTransferMissing, e.Index, e.Type, e.Outcome)
	}
	body, err := m.BodySHA256()
	if err != nil {
		return false, err
	}
	d := e.Details
	for _, c := range []struct{ what, got, want string }{
		{"archive id", d[detailArchive], m.ArchiveID},
		{"dataset", d[detailDataset], m.Dataset},
		{"kek", e.KEKID + " v" + strconv.FormatUint(uint64(e.KEKVersion), 10), m.KEK.ID + " v" + strconv.FormatUint(uint64(m.KEK.Version), 10)},
		{"archive sha256", d[detailSHA256], m.Archive.SHA256},
		{"archive size", d[detailSize], strconv.FormatInt(m.Archive.Size, 10)},
	} {
		if c.got != c.want {
			return false, fmt.Errorf("%w: log entry %d records %s %q, the manifest says %q", ErrTransferMismatch, e.Index, c.what, c.got, c.want)
		}
	}
	_, hasIdx := d[detailIndexSHA256]
	_, hasMan := d[detailManifestSHA256]
	if !hasIdx && !hasMan {
		return true, nil
	}
	for _, c := range []struct{ what, got, want string }{
		{"index sha256", d[detailIndexSHA256], m.Index.SHA256},
		{"index size", d[detailIndexSize], strconv.FormatInt(m.Index.Size, 10)},
		{"manifest sha256", d[detailManifestSHA256], body},
	} {
		if c.got != c.want {
			return false, fmt.Errorf("%w: log entry %d records %s %q, the manifest says %q", ErrTransferMismatch, e.Index, c.what, c.got, c.want)
		}
	}
	return false, nil
}
