package main

// Offline wrap for `custos backup run`: the archive's file key is wrapped
// with the KEK version's public key, without a wrap call, once the key is
// checked against the key-op log through a pinned trust file (made by
// `custos audit checkpoint`). Only the unwrap at restore goes through the
// cluster (authorised and logged).

import (
	"context"
	"errors"
	"fmt"
	"os"

	"filippo.io/age"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// envTrust names the trust file `backup run` checks an offline wrap's KEK
// public key with, when --trust is not given.
const envTrust = "CUSTOS_TRUST"

// proofSource is what proving an entry asks the cluster (*client.Client).
type proofSource interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error)
	InclusionProof(ctx context.Context, index, size uint64) (ledger.InclusionProof, error)
}

// kekKeySource is what the offline wrap asks the cluster (*client.Client).
type kekKeySource interface {
	proofSource
	KEK(ctx context.Context, id string) (client.KEK, error)
	PublicKey(ctx context.Context, kekID string, version uint32) (client.PublicKeyResponse, error)
}

// proveLogEntry fetches a current checkpoint, a consistency proof with t's
// pin (none for a ServedTrust) and the inclusion proof of entry index,
// whose canonical bytes are raw, and checks them (audit.VerifyEntry).
func proveLogEntry(ctx context.Context, src proofSource, t *audit.Trust, index uint64, raw []byte) (ledger.Entry, ledger.Checkpoint, error) {
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

// offlineKeySource returns where the offline wrap gets the key and proofs
// from: the API client (tests interpose).
var offlineKeySource = func(c *client.Client) kekKeySource { return c }

// provedKEKKey is a KEK version's public key, checked against the log.
type provedKEKKey struct {
	kekID    string
	version  uint32
	pub      []byte
	logIndex uint64 // the ceremony.execute entry that dealt it
}

// backupRecipient returns the recipient that wraps a dataset's archive key
// under wctx: online (a logged wrap call) unless the dataset's wrap is
// offline, then with the newest active version's public key once checked
// against the log with the trust file at trustPath (--trust, or
// $CUSTOS_TRUST). keyLogIndex is, offline, the entry that proved the key.
func backupRecipient(ctx context.Context, c *client.Client, ds *policy.Dataset, trustPath string, wctx wrapkey.Context) (rcp age.Recipient, mode string, keyLogIndex uint64, err error) {
	mode = ds.WrapMode()
	if mode != policy.WrapOffline {
		r, err := custosage.NewOnlineRecipient(ctx, c, ds.KEK, wctx)
		return r, mode, 0, err
	}
	if trustPath == "" {
		trustPath = os.Getenv(envTrust)
	}
	if trustPath == "" {
		return nil, mode, 0, fmt.Errorf("dataset %q wraps offline: give the trust file with --trust FILE (or $%s), made by custos audit checkpoint, to check the kek's public key against the log; nothing was sent", ds.Name, envTrust)
	}
	pt, err := readTrust(trustPath)
	if err != nil {
		return nil, mode, 0, fmt.Errorf("offline wrap: trust file: %w; nothing was sent", err)
	}
	k, err := proveKEKKey(ctx, offlineKeySource(c), pt.t, ds.KEK)
	if err != nil {
		return nil, mode, 0, fmt.Errorf("offline wrap with kek %s: %w; nothing was sent", ds.KEK, err)
	}
	r, err := custosage.NewOfflineRecipient(k.kekID, k.version, k.pub, wctx)
	if err != nil {
		return nil, mode, 0, fmt.Errorf("offline wrap with kek %s v%d: %w; nothing was sent", k.kekID, k.version, err)
	}
	return r, mode, k.logIndex, nil
}

// proveKEKKey fetches the newest active version of KEK kekID, its public
// key with the entry that dealt it, a current checkpoint, a consistency
// proof with the trust file's pin and the entry's inclusion proof, and
// checks them with audit.VerifyKEKKey.
func proveKEKKey(ctx context.Context, src kekKeySource, t *audit.Trust, kekID string) (*provedKEKKey, error) {
	k, err := src.KEK(ctx, kekID)
	if err != nil {
		return nil, fmt.Errorf("reading the kek: %w", err)
	}
	var version uint32
	for _, v := range k.Versions {
		if v.State == keysvc.KEKActive && v.Version > version {
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
	case pk.State != keysvc.KEKActive:
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
	return &provedKEKKey{kekID: kekID, version: version, pub: pk.PublicKey, logIndex: pk.LogIndex}, nil
}
