package main

// The trust file (keysvc/audit.Trust) as the CLI uses it, and
// verification of a pack against it.

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// pinnedTrust is a checked trust file and its node keys.
type pinnedTrust struct {
	t    *audit.Trust
	keys []ledger.NodeKey
}

func (t *pinnedTrust) origin() string     { return t.t.Origin }
func (t *pinnedTrust) cluster() string    { return t.t.Cluster }
func (t *pinnedTrust) checkpoint() string { return t.t.Checkpoint }

// readTrust reads and checks the trust file at path.
func readTrust(path string) (*pinnedTrust, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := audit.ParseTrust(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return wrapTrust(t)
}

func wrapTrust(t *audit.Trust) (*pinnedTrust, error) {
	keys, err := ledger.ParseNodeKeys([]byte(t.NodeKeys))
	if err != nil {
		return nil, err
	}
	return &pinnedTrust{t: t, keys: keys}, nil
}

// newTrustFile checks and encodes a new trust file.
func newTrustFile(cluster string, genesis []byte, proof tlog.RecordProof, keys string, note []byte) ([]byte, error) {
	t, err := audit.NewTrust(cluster, genesis, proof, keys, note)
	if err != nil {
		return nil, err
	}
	return t.Marshal()
}

// repin moves the pin to the signed checkpoint note (which the caller
// verified extends the pinned one) and rewrites the file at path
// atomically. A verified state stays: the next pack still starts there.
func (t *pinnedTrust) repin(path string, note []byte) error {
	b, err := (&audit.Trust{Cluster: t.t.Cluster, Origin: t.t.Origin, Genesis: t.t.Genesis,
		NodeKeys: t.t.NodeKeys, Checkpoint: string(note), State: t.t.State}).Marshal()
	if err != nil {
		return err
	}
	n, err := audit.ParseTrust(b)
	if err != nil {
		return err
	}
	return t.save(path, n)
}

// save writes n to path atomically and makes it t's trust.
func (t *pinnedTrust) save(path string, n *audit.Trust) error {
	b, err := n.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return err
	}
	w, err := wrapTrust(n)
	if err != nil {
		return err
	}
	*t = *w
	return nil
}

// verifyPack verifies the pack read from r against t, calling onEntry (if
// set) with each entry as it passes.
func verifyPack(r io.Reader, t *pinnedTrust, partial bool, onEntry func(ledger.Entry) error) (*audit.Report, error) {
	return audit.Verify(r, t.t, audit.Options{AllowPartial: partial, OnEntry: onEntry})
}

// failureOf describes a verification error for people and pipelines.
func failureOf(err error) *failureJSON {
	var f *audit.Failure
	if errors.As(err, &f) {
		j := &failureJSON{Kind: f.Kind, Code: f.Code, Message: f.Msg}
		if f.Index >= 0 {
			i := uint64(f.Index)
			j.Index = &i
		}
		if f.Line > 0 {
			j.Line = f.Line
		}
		if errors.Is(err, audit.ErrPartial) {
			j.Message += audit.PartialHint
		}
		return j
	}
	return &failureJSON{Kind: "io", Message: err.Error()}
}
