package main

// Before restore, verify or drill read an archive, the agent proves its
// manifest against the key-op log: the manifest sits in the clear on the
// target and may be an attacker's; the backup.transfer entry the agent
// logged when it uploaded the archive is the trust anchor.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// transferSource is what proving a transfer asks the cluster (*client.Client).
type transferSource interface {
	proofSource
	Attestation(ctx context.Context, index uint64) (ledger.Entry, []byte, error)
	Cluster(ctx context.Context) (client.Status, error)
	NodeKeys(ctx context.Context) ([]ledger.NodeKey, error)
}

// transferSourceOf returns where the proof gets entries and proofs from:
// the API client (tests interpose).
var transferSourceOf = func(c *client.Client) transferSource { return c }

// provedTransfer is a manifest proved against the log.
type provedTransfer struct {
	entry  ledger.Entry
	cp     ledger.Checkpoint
	trust  string // how the checkpoint was checked, for the output
	legacy bool   // the entry predates index and manifest hashes
}

// proveTransfer proves m against the log before anything of its archive
// is read: the transfer entry m's receipt names must be the caller's, be
// included under a checkpoint verified with the trust file at trustPath
// (--trust, or $CUSTOS_TRUST) or, without one, with the node keys the
// cluster serves, and describe exactly this archive
// (archive.CheckTransfer). Failures wrap archive.ErrTransferMissing,
// ErrTransferMismatch or ErrTransferUnproved.
func proveTransfer(ctx context.Context, src transferSource, trustPath string, m *archive.Manifest) (*provedTransfer, error) {
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
	var t *audit.Trust
	how := ""
	if trustPath == "" {
		trustPath = os.Getenv(envTrust)
	}
	if trustPath != "" {
		pt, err := readTrust(trustPath)
		if err != nil {
			return nil, fmt.Errorf("trust file: %w", err)
		}
		t = pt.t
		how = fmt.Sprintf("with the trust file %s (pinned at size %d)", trustPath, t.Pinned().Size)
	} else {
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
		how = "with the node keys the cluster serves (no trust file: give --trust to check it against a log you pinned)"
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
	return &provedTransfer{entry: e, cp: cp, trust: how, legacy: legacy}, nil
}

// describe is the proof in one line of output.
func (p *provedTransfer) describe() string {
	s := fmt.Sprintf("transfer entry %d matches the manifest; included under the checkpoint of size %d, verified %s", p.entry.Index, p.cp.Size, p.trust)
	if p.legacy {
		s += "; the entry predates index and manifest hashes: the archive's hash is checked, and the index must match it record for record"
	}
	return s
}
