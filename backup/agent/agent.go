// Package agent holds the backup agent's use cases, which the custos backup
// commands call: Run (policy decision, upload, transfer attestation,
// manifest), List and Find (the store layout), Restore, Verify and Drill
// (each only after the archive's manifest is proved against the key-op
// log), Prune and Status.
//
// An Agent is built once from a policy and a way to open its targets; the
// cluster is passed to each use case as the narrow interface it calls
// (*client.Client satisfies them all). Loading files and flags, and
// printing, stay with the caller: the use cases return values, report
// progress through an optional Progress and take an already checked
// *audit.Trust where a proof needs one.
//
// The package imports only the client-side leaves of keysvc (client,
// audit, ledger, wrapkey), never node code.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/backup/target"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Config is what every use case needs.
type Config struct {
	// Policy is the loaded policy file (datasets, targets).
	Policy *policy.Policy
	// Open opens one of the policy's targets (the caller knows where
	// credentials come from). A target that implements io.Closer is
	// closed after use.
	Open func(ctx context.Context, t *policy.Target) (target.Target, error)
	// Warn, if set, gets one line per manifest a listing skips (unreadable,
	// or stored under another archive's name).
	Warn io.Writer
}

// Agent runs the use cases for one policy. It keeps no state between
// calls and is safe for concurrent use if Open is.
type Agent struct {
	p    *policy.Policy
	open func(ctx context.Context, t *policy.Target) (target.Target, error)
	warn io.Writer
	now  func() time.Time
}

// New checks cfg and returns its Agent.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("agent: no policy")
	case cfg.Open == nil:
		return nil, errors.New("agent: no way to open targets")
	}
	warn := cfg.Warn
	if warn == nil {
		warn = io.Discard
	}
	return &Agent{p: cfg.Policy, open: cfg.Open, warn: warn, now: time.Now}, nil
}

// Policy returns the agent's policy.
func (a *Agent) Policy() *policy.Policy { return a.p }

// Targets returns the targets a command looks at: name, or every target of
// the policy when name is empty.
func (a *Agent) Targets(name string) ([]string, error) {
	if name != "" {
		if _, ok := a.p.Target(name); !ok {
			return nil, fmt.Errorf("the policy names no target %q", name)
		}
		return []string{name}, nil
	}
	var names []string
	for _, t := range a.p.Targets {
		names = append(names, t.Name)
	}
	return names, nil
}

// openTarget opens the policy target name.
func (a *Agent) openTarget(ctx context.Context, name string) (target.Target, error) {
	pt, ok := a.p.Target(name)
	if !ok {
		return nil, fmt.Errorf("the policy names no target %q", name)
	}
	return a.open(ctx, pt)
}

// closeTarget closes t if it holds resources.
func closeTarget(t target.Target) {
	if c, ok := t.(io.Closer); ok {
		c.Close()
	}
}

// Progress shows a use case's progress. It is called once the use case
// starts moving bytes: op is "backup", "restore", "verify" or "drill",
// total the bytes expected (0 if unknown) and attrs slog key-value pairs
// naming the dataset, archive and target. The use case adds the bytes it
// has done to done and calls stop once with its outcome. An error ends
// the use case before it moves anything. A nil Progress shows nothing.
type Progress func(op string, total int64, attrs ...any) (done *atomic.Int64, stop func(error), err error)

// start calls p, or returns a counter nobody reads when p is nil.
func (p Progress) start(op string, total int64, attrs ...any) (*atomic.Int64, func(error), error) {
	if p == nil {
		return nil, func(error) {}, nil
	}
	return p(op, total, attrs...)
}

// What the use cases ask the cluster; *client.Client satisfies each.
type (
	// ProofSource serves checkpoints and proofs.
	ProofSource interface {
		Checkpoint(ctx context.Context) ([]byte, error)
		ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error)
		InclusionProof(ctx context.Context, index, size uint64) (ledger.InclusionProof, error)
	}
	// KEKKeySource serves a KEK's public key for an offline wrap, with
	// what proves it.
	KEKKeySource interface {
		ProofSource
		KEK(ctx context.Context, id string) (client.KEK, error)
		PublicKey(ctx context.Context, kekID string, version uint32) (client.PublicKeyResponse, error)
	}
	// TransferSource serves a transfer entry and what proves it.
	TransferSource interface {
		ProofSource
		Attestation(ctx context.Context, index uint64) (ledger.Entry, []byte, error)
		Cluster(ctx context.Context) (client.Status, error)
		NodeKeys(ctx context.Context) ([]ledger.NodeKey, error)
	}
	// Attester appends the agent's attestations (transfer, drill, prune).
	Attester interface {
		Attest(ctx context.Context, req client.AttestRequest) (uint64, error)
	}
	// RunCluster is what a backup asks: an online wrap, the KEK's key for
	// an offline one, and the transfer's attestation.
	RunCluster interface {
		custosage.Wrapper
		KEKKeySource
		Attester
	}
	// DrillCluster is what a drill asks: the unwrap and the drill's
	// attestation.
	DrillCluster interface {
		custosage.Unwrapper
		Attester
	}
	// DrillSource serves the newest drill of each dataset.
	DrillSource interface {
		Drills(ctx context.Context, dataset string) ([]client.Drill, error)
	}
)

var (
	_ RunCluster     = (*client.Client)(nil)
	_ TransferSource = (*client.Client)(nil)
	_ DrillCluster   = (*client.Client)(nil)
	_ DrillSource    = (*client.Client)(nil)
)
