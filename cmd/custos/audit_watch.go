package main

// `custos audit watch`: follow the cluster's signed checkpoints from the
// one pinned in a trust file, prove each new one extends it, and move the
// pin forward; a fork, a rollback or a proof that fails is an ALERT line
// and a non-zero exit. The new entries are fetched too, proven to be those
// of the checkpoint, and their activations and share releases checked: a
// release without a valid activation before it is an ALERT line.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// checkpointSource is what watch asks of the cluster.
type checkpointSource interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error)
}

// logSource is what watch asks of the cluster to read the new entries;
// without it (a source that serves checkpoints only) they are not checked.
type logSource interface {
	audit.EntrySource
	InclusionProof(ctx context.Context, index, size uint64) (ledger.InclusionProof, error)
}

// maxAlerts bounds the ALERT lines of one poll.
const maxAlerts = 100

// alertError is a finding: the log was not append-only as pinned (a fork,
// a rollback, a checkpoint no trusted node signed, a consistency proof that
// fails), or its new entries hold a share release without a valid
// activation. Each message is one ALERT line.
type alertError struct{ msgs []string }

func (e *alertError) Error() string { return "ALERT: " + strings.Join(e.msgs, "\nALERT: ") }

func alertf(format string, args ...any) *alertError {
	return &alertError{[]string{fmt.Sprintf(format, args...)}}
}

// watcher holds the pin of one trust file.
type watcher struct {
	src    checkpointSource
	path   string // the trust file, rewritten as the pin moves
	trust  *pinnedTrust
	pinned ledger.Checkpoint
	log    *slog.Logger

	releases *audit.ShareReleases // the activations and releases followed so far
	tree     *audit.Tree          // the tree of the entries followed, while it is at the pin
}

// newWatcher reads the trust file at path. Moving its pin keeps a verified
// state the file holds: the next pack still starts there.
func newWatcher(src checkpointSource, path string, log *slog.Logger) (*watcher, error) {
	t, err := readTrust(path)
	if err != nil {
		return nil, err
	}
	return &watcher{src: src, path: path, trust: t, pinned: t.t.Pinned(), log: log}, nil
}

// poll fetches the latest checkpoint and moves the pin to it if it
// extends the pinned one. It returns an *alertError on evidence that the
// log is not append-only, other errors when the cluster could not be asked.
func (w *watcher) poll(ctx context.Context) error {
	msg, err := w.src.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("fetch the latest checkpoint: %w", err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(msg, w.trust.origin(), w.trust.keys...)
	if err != nil {
		return alertf("the latest checkpoint does not verify with the trust file's node keys: %v (if a node joined since the pin, verify an `audit export --since` pack and pin again)", err)
	}
	old := w.pinned
	switch {
	case cp.Size < old.Size:
		return alertf("rollback: the cluster's latest checkpoint (size %d, root %s, signed by %s) is smaller than the pinned one (size %d, root %s)",
			cp.Size, rootWords(cp.Hash), signer, old.Size, rootWords(old.Hash))
	case cp.Size == old.Size && cp.Hash != old.Hash:
		return alertf("fork: two signed checkpoints of size %d with different roots: pinned %s, now %s (signed by %s)",
			cp.Size, rootWords(old.Hash), rootWords(cp.Hash), signer)
	case cp.Size == old.Size:
		w.log.Info("checkpoint unchanged", "size", cp.Size, "root", rootWords(cp.Hash), "signer", signer)
		return nil
	}
	proof, err := w.src.ConsistencyProof(ctx, old.Size, cp.Size)
	if err != nil {
		return fmt.Errorf("fetch the consistency proof from %d to %d: %w", old.Size, cp.Size, err)
	}
	if err := ledger.VerifyConsistency(old, cp, proof.Hashes); err != nil {
		return alertf("fork: the checkpoint of size %d (root %s, signed by %s) does not extend the pinned one of size %d (root %s): %v",
			cp.Size, rootWords(cp.Hash), signer, old.Size, rootWords(old.Hash), err)
	}
	findings, err := w.followEntries(ctx, old, cp)
	if err != nil {
		return err
	}
	// The log only grew: the pin moves even when its new entries hold
	// findings, which are alerted once.
	if err := w.trust.repin(w.path, msg); err != nil {
		return fmt.Errorf("move the pin in %s: %w", w.path, err)
	}
	w.pinned = cp
	w.log.Info("checkpoint accepted", "size", cp.Size, "root", rootWords(cp.Hash), "signer", signer,
		"grew", cp.Size-old.Size, "from_size", old.Size)
	if findings != nil {
		return findings
	}
	return nil
}

// followEntries fetches the entries between the pinned checkpoint old and
// cp, proves they are those of cp's tree, and checks their activations and
// share releases. It returns the findings as an *alertError (nil if none);
// its error is an *alertError if the entries are not those of the
// checkpoint, another error when the cluster could not be asked.
func (w *watcher) followEntries(ctx context.Context, old, cp ledger.Checkpoint) (*alertError, error) {
	src, ok := w.src.(logSource)
	if !ok {
		return nil, nil
	}
	if w.tree == nil || w.tree.Size() != old.Size {
		t := &audit.Tree{}
		if old.Size > 0 {
			frontier, err := audit.FrontierAt(ctx, src, old.Size)
			if err != nil {
				return nil, fmt.Errorf("the tree at the pin: %w", err)
			}
			if t, err = audit.NewTreeFromFrontier(old.Size, frontier); err != nil {
				return nil, err
			}
		}
		if t.Root() != old.Hash {
			return nil, alertf("the entry the cluster serves at %d, with its proof, does not give the pinned root %s", old.Size-1, rootWords(old.Hash))
		}
		w.tree = t
	}
	if w.releases == nil {
		st := w.trust.t.State
		w.releases = audit.NewShareReleases(w.trust.cluster(), st != nil && st.Size <= old.Size && st.ReleasesBound)
	}
	tree, err := audit.NewTreeFromFrontier(w.tree.Size(), w.tree.Frontier()) // a copy, kept only if the root matches
	if err != nil {
		return nil, err
	}
	var alerts []string
	more := 0
	err = audit.FetchEntries(ctx, src, old.Size, cp.Size, audit.ExportWorkers, func(i uint64, raw []byte) error {
		e, err := ledger.ParseEntry(raw)
		if err != nil || e.Index != i {
			return alertf("entry %d as the cluster serves it is not a canonical entry %d: %v", i, i, err)
		}
		tree.Add(tlog.RecordHash(raw))
		finding := func(f *audit.ReleaseFinding) {
			if len(alerts) < maxAlerts {
				alerts = append(alerts, f.Code+": "+f.Msg)
			} else {
				more++
			}
		}
		if a, need := w.releases.Needs(e); need {
			f, err := w.earlier(ctx, src, cp, a)
			if err != nil {
				return err
			}
			if f != nil {
				finding(f)
			}
		}
		if f := w.releases.Entry(e); f != nil {
			finding(f)
		}
		return nil
	})
	var alert *alertError
	if errors.As(err, &alert) {
		return nil, alert
	}
	if err != nil {
		return nil, fmt.Errorf("fetch entries %d to %d: %w", old.Size, cp.Size, err)
	}
	if tree.Root() != cp.Hash {
		w.tree = nil
		return nil, alertf("the entries the cluster serves from %d to %d do not give the root %s of its signed checkpoint", old.Size, cp.Size, rootWords(cp.Hash))
	}
	w.tree = tree
	if len(alerts) == 0 {
		return nil, nil
	}
	if more > 0 {
		alerts = append(alerts, fmt.Sprintf("%d more findings: verify a pack of entries %d to %d (custos audit export --since, verify, report)", more, old.Size, cp.Size))
	}
	return &alertError{alerts}, nil
}

// earlier fetches activation entry a, from before the entries followed,
// proves it is in cp's tree, and gives it to the release checker, which
// may find fault with it.
func (w *watcher) earlier(ctx context.Context, src logSource, cp ledger.Checkpoint, a uint64) (*audit.ReleaseFinding, error) {
	page, err := src.Entries(ctx, a, 1)
	if err != nil || len(page) != 1 {
		return nil, fmt.Errorf("entry %d, named as an activation: %v", a, err)
	}
	proof, err := src.InclusionProof(ctx, a, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of entry %d: %w", a, err)
	}
	if err := ledger.VerifyInclusion(cp, a, page[0], proof.Hashes); err != nil {
		return nil, alertf("entry %d as the cluster serves it is not in its signed checkpoint of size %d: %v", a, cp.Size, err)
	}
	e, err := ledger.ParseEntry(page[0])
	if err != nil || e.Index != a {
		return nil, alertf("entry %d as the cluster serves it is not a canonical entry %d: %v", a, a, err)
	}
	return w.releases.Earlier(e), nil
}

func runAuditWatch(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("audit watch", flag.ContinueOnError)
	fs.SetOutput(s.err)
	af := addAPIFlags(fs)
	trustFile := fs.String("trust", "", "the trust `FILE` saved by custos audit checkpoint (required); its pinned checkpoint moves forward as the log grows")
	interval := fs.Duration("interval", 30*time.Second, "time between polls")
	once := fs.Bool("once", false, "poll once and exit: 0 if the latest checkpoint extends the pin")
	_ = fs.Bool("drop-state", false, "ignored: a verified state now stays when the pin moves")
	if _, err := parsePositional(fs, args); err != nil {
		return err
	}
	if *trustFile == "" {
		return usagef("--trust FILE is required (save one with custos audit checkpoint --out FILE)")
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval %v: must be positive", *interval)
	}
	cl, err := auditorClient(af)
	if err != nil {
		return err
	}
	defer cl.Close()
	log := slog.New(slog.NewTextHandler(s.out, nil))
	w, err := newWatcher(cl, *trustFile, log)
	if err != nil {
		return err
	}
	log.Info("watching", "trust", *trustFile, "origin", w.trust.origin(), "pinned_size", w.pinned.Size,
		"pinned_root", rootWords(w.pinned.Hash), "interval", interval.String())
	return watchLoop(ctx, w, s.out, *interval, *once)
}

// watchLoop polls until ctx ends, an alert, or after one poll with once.
// Failures to reach the cluster are logged and retried (but fail a single
// poll); an alert is printed as an ALERT line and ends the watch.
func watchLoop(ctx context.Context, w *watcher, out io.Writer, interval time.Duration, once bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := w.poll(ctx)
		var alert *alertError
		if errors.As(err, &alert) {
			fmt.Fprintln(out, alert.Error())
			w.log.Error("alert", "pinned_size", w.pinned.Size, "pinned_root", rootWords(w.pinned.Hash), "trust", w.path)
			return alert
		}
		if ctx.Err() != nil { // interrupted: not a finding
			w.log.Info("stopped", "pinned_size", w.pinned.Size)
			return nil
		}
		if err != nil {
			if once {
				return err
			}
			w.log.Warn("poll failed; retrying", "err", err.Error())
		}
		if once {
			return nil
		}
		select {
		case <-ctx.Done():
			w.log.Info("stopped", "pinned_size", w.pinned.Size)
			return nil
		case <-t.C:
		}
	}
}
