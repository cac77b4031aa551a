package agent

// Proofs against the key-op log. A manifest sits in the clear on the
// target and may be an attacker's: before restore, verify or drill read an
// archive, its manifest is proved against the backup.transfer entry the
// agent logged when it uploaded it (ProveTransfer). An offline wrap uses a
// KEK version's public key only once the entry that dealt it is proved
// under a pinned checkpoint (ProveKEKKey).

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// proveLogEntry fetches a current checkpoint, a consistency proof with t's
// pin (none for a ServedTrust) and the inclusion proof of entry index,
// whose canonical bytes are raw, and checks them (audit.VerifyEntry).
func proveLogEntry(ctx context.Context, src ProofSource, t *audit.Trust, index uint64, raw []byte) (ledger.Entry, ledger.Checkpoint, error) {
	note, err := src.Checkpoint(ctx)
	if err != nil {
		return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	p := audit.EntryProof{Checkpoint: note, Entry: raw, Index: index}
	cp, err := t.VerifyNote(note)
	if err != nil {
		return ledger.Entry{}, ledger.Checkpoint{}, err
	}
	if cp.Size <= index {
		return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("the cluster's checkpoint (size %d) does not cover entry %d yet: retry", cp.Size, index)
	}
	if !t.Served() {
		pinned := t.Pinned()
		if lo, hi := min(pinned.Size, cp.Size), max(pinned.Size, cp.Size); lo != hi {
			cons, err := src.ConsistencyProof(ctx, lo, hi)
			if err != nil {
				return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("consistency proof from size %d to %d: %w", lo, hi, err)
			}
			p.Consistency = cons.Hashes
		}
	}
	incl, err := src.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return ledger.Entry{}, ledger.Checkpoint{}, fmt.Errorf("inclusion proof of entry %d in size %d: %w", index, cp.Size, err)
	}
	p.Inclusion = incl.Hashes
	return audit.VerifyEntry(t, p)
}

// KEKKey is a KEK version's public key, checked against the log.
type KEKKey struct {
	KEKID    string
	Version  uint32
	Public   []byte
	LogIndex uint64 // the ceremony.execute entry that dealt it
}

// ProveKEKKey fetches the newest active version of KEK kekID, its public
// key with the entry that dealt it, a current checkpoint, a consistency
// proof with t's pin and the entry's inclusion proof, and checks them with
// audit.CheckKEKKey. t is a pinned trust (audit.ParseTrust), checked by the
// caller.
func ProveKEKKey(ctx context.Context, src KEKKeySource, t *audit.Trust, kekID string) (*KEKKey, error) {
	k, err := src.KEK(ctx, kekID)
	if err != nil {
		return nil, fmt.Errorf("reading the kek: %w", err)
	}
	var version uint32
	for _, v := range k.Versions {
		if v.State == ledger.KEKActive && v.Version > version {
			version = v.Version
		}
	}
	if version == 0 {
		return nil, errors.New("the kek has no active version")
	}
	pk, err := src.PublicKey(ctx, kekID, version)
	if err != nil {
		return nil, fmt.Errorf("public key of v%d: %w", version, err)
	}
	switch {
	case pk.KEKID != kekID || pk.KEKVersion != version:
		return nil, fmt.Errorf("asked for the public key of v%d, the cluster answered kek %q v%d", version, pk.KEKID, pk.KEKVersion)
	case pk.State != ledger.KEKActive:
		return nil, fmt.Errorf("v%d is %s, not active", version, pk.State)
	case len(pk.Entry) == 0:
		return nil, errors.New("the cluster served the public key without the log entry that dealt it (a node older than this agent?): wrap online, or upgrade the cluster")
	}
	e, _, err := proveLogEntry(ctx, src, t, pk.LogIndex, pk.Entry)
	if err != nil {
		return nil, fmt.Errorf("%w; the key cannot be checked: do not wrap with it", err)
	}
	if err := audit.CheckKEKKey(e, kekID, version, pk.PublicKey); err != nil {
		return nil, err
	}
	return &KEKKey{KEKID: kekID, Version: version, Public: pk.PublicKey, LogIndex: pk.LogIndex}, nil
}

// Transfer is a manifest proved against the log.
type Transfer struct {
	Entry      ledger.Entry      // the backup.transfer entry
	Checkpoint ledger.Checkpoint // the checkpoint it is included under
	Served     bool              // checked with the node keys the cluster serves, not a pinned trust
	Legacy     bool              // the entry predates index and manifest hashes
}

// ProveTransfer proves m against the log before anything of its archive is
// read: the transfer entry m's receipt names must be the caller's, be
// included under a checkpoint verified with t (a pinned trust, checked by
// the caller) or, when t is nil, with the node keys the cluster serves,
// and describe exactly this archive (archive.CheckTransfer). Failures wrap
// archive.ErrTransferMissing, ErrTransferMismatch or ErrTransferUnproved.
func ProveTransfer(ctx context.Context, src TransferSource, t *audit.Trust, m *archive.Manifest) (*Transfer, error) {
	if m.Receipt == nil {
		return nil, fmt.Errorf("%w: the manifest names no transfer entry (an archive whose upload was never attested)", archive.ErrTransferMissing)
	}
	index := m.Receipt.LogIndex
	_, raw, err := src.Attestation(ctx, index)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Code == client.CodeNotFound {
		return nil, fmt.Errorf("%w: the log has no transfer of this agent's at entry %d, the manifest's receipt", archive.ErrTransferMissing, index)
	}
	if err != nil {
		return nil, fmt.Errorf("reading transfer entry %d: %w", index, err)
	}
	served := t == nil
	if served {
		st, err := src.Cluster(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the cluster's name: %w", err)
		}
		keys, err := src.NodeKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the cluster's node keys: %w", err)
		}
		if t, err = audit.ServedTrust(st.Cluster, keys); err != nil {
			return nil, err
		}
	}
	e, cp, err := proveLogEntry(ctx, src, t, index, raw)
	if err != nil {
		if errors.Is(err, audit.ErrCheckpointUntrusted) || errors.Is(err, audit.ErrLogInconsistent) || errors.Is(err, audit.ErrNotIncluded) {
			return nil, fmt.Errorf("%w: transfer entry %d: %v", archive.ErrTransferUnproved, index, err)
		}
		return nil, fmt.Errorf("proving transfer entry %d: %w", index, err)
	}
	legacy, err := m.CheckTransfer(e)
	if err != nil {
		return nil, err
	}
	return &Transfer{Entry: e, Checkpoint: cp, Served: served, Legacy: legacy}, nil
}

// Prove proves the archive's manifest against the log (ProveTransfer) and
// remembers the outcome: Restore, Verify and Drill read the archive only
// once it is proved, and a drill records a failed proof. Its error says
// the archive was refused before it was read (Refused).
func (a *Archive) Prove(ctx context.Context, src TransferSource, t *audit.Trust) (*Transfer, error) {
	p, err := ProveTransfer(ctx, src, t, a.Manifest)
	if err != nil {
		a.proofErr = a.Refused(err)
		return nil, a.proofErr
	}
	a.proof = p
	return p, nil
}

// Refused wraps err, why the archive could not be proved, in the words a
// refusal uses: "ARCHIVE on "TARGET": refused before reading it (nothing
// was restored): err".
func (a *Archive) Refused(err error) error {
	return fmt.Errorf("%s on %q: refused before reading it (nothing was restored): %w", a.Manifest.ArchiveID, a.Target, err)
}

// proved returns nil once the archive is proved, else why not.
func (a *Archive) proved() error {
	switch {
	case a.proof != nil:
		return nil
	case a.proofErr != nil:
		return a.proofErr
	}
	return fmt.Errorf("archive %s is not proved against the log: %w", a.Manifest.ArchiveID, archive.ErrTransferUnproved)
}
