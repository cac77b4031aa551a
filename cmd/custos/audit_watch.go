package main

// `custos audit watch`: follow the cluster's signed checkpoints from the
// one pinned in a trust file, prove each new one extends it, and move the
// pin forward; a fork, a rollback or a proof that fails is an ALERT line
// and a non-zero exit.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// checkpointSource is what watch asks of the cluster.
type checkpointSource interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error)
}

// alertError is a finding that the log was not append-only as pinned: a
// fork, a rollback, a checkpoint no trusted node signed, or a consistency
// proof that fails.
type alertError struct{ msg string }

func (e *alertError) Error() string { return "ALERT: " + e.msg }

func alertf(format string, args ...any) *alertError {
	return &alertError{fmt.Sprintf(format, args...)}
}

// watcher holds the pin of one trust file.
type watcher struct {
	src    checkpointSource
	path   string // the trust file, rewritten as the pin moves
	trust  *pinnedTrust
	pinned ledger.Checkpoint
	log    *slog.Logger
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
	if err := w.trust.repin(w.path, msg); err != nil {
		return fmt.Errorf("move the pin in %s: %w", w.path, err)
	}
	w.pinned = cp
	w.log.Info("checkpoint accepted", "size", cp.Size, "root", rootWords(cp.Hash), "signer", signer,
		"grew", cp.Size-old.Size, "from_size", old.Size)
	return nil
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
		return errors.New("--trust FILE is required (save one with custos audit checkpoint --out FILE)")
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
