package agent

// Restore, Verify and Drill: each reads an archive only once Prove has
// proved its manifest against the log, and unwraps its key through the
// cluster (authorised and logged) under the context the manifest names.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/client"
)

// open opens the proved archive's objects and starts op's progress
// through its ciphertext. The caller closes both and calls stop.
func (a *Archive) open(ctx context.Context, op string, prog Progress) (arc, idx io.ReadCloser, stop func(error), err error) {
	if err := a.proved(); err != nil {
		return nil, nil, nil, err
	}
	m := a.Manifest
	done, stop, err := prog.start(op, m.Archive.Size, "dataset", m.Dataset, "archive", m.ArchiveID, "target", a.Target)
	if err != nil {
		return nil, nil, nil, err
	}
	if arc, idx, err = a.openParts(ctx, done); err != nil {
		stop(err)
		return nil, nil, nil, err
	}
	return arc, idx, stop, nil
}

// identity unwraps through u, refusing a key bound to another archive.
func (a *Archive) identity(ctx context.Context, u custosage.Unwrapper) *custosage.Identity {
	id := custosage.NewIdentity(ctx, u)
	id.Expect = a.Manifest.Expect()
	return id
}

// Restored is an archive restored.
type Restored struct {
	*archive.Result
	// Unwrap is the receipt of the key's unwrap, if the cluster logged one.
	Unwrap *custosage.Receipt
}

// Restore restores the proved archive into dir (archive.Restore: staged,
// moved into place only once the whole archive verified). Its errors say
// that nothing was restored.
func (a *Archive) Restore(ctx context.Context, u custosage.Unwrapper, dir string, opts archive.RestoreOptions, prog Progress) (*Restored, error) {
	r, restoring, err := a.restore(ctx, u, dir, opts, "restore", prog)
	if err != nil && restoring {
		if strings.Contains(err.Error(), "nothing was restored") {
			return nil, fmt.Errorf("restoring %s: %w", a.Manifest.ArchiveID, err)
		}
		return nil, fmt.Errorf("restoring %s: %w (nothing was restored)", a.Manifest.ArchiveID, err)
	}
	return r, err
}

// restore restores the archive into dir, reporting progress as op;
// restoring tells whether the error is archive.Restore's.
func (a *Archive) restore(ctx context.Context, u custosage.Unwrapper, dir string, opts archive.RestoreOptions, op string, prog Progress) (_ *Restored, restoring bool, _ error) {
	arc, idx, stop, err := a.open(ctx, op, prog)
	if err != nil {
		return nil, false, err
	}
	defer arc.Close()
	defer idx.Close()
	id := a.identity(ctx, u)
	res, err := archive.Restore(ctx, a.Manifest, arc, idx, id, dir, opts)
	stop(err)
	if err != nil {
		return nil, true, err
	}
	r := &Restored{Result: res}
	if rc, ok := id.Receipt(); ok {
		r.Unwrap = &rc
	}
	return r, false, nil
}

// Verify checks the proved archive: without full, that the archive's and
// the index's ciphertexts match the SHA-256 the log records (nothing is
// decrypted, u is not called, the result is nil); with full, also
// decrypts (unwrapping through u) and checks every file's hash, writing
// nothing.
func (a *Archive) Verify(ctx context.Context, u custosage.Unwrapper, full bool, prog Progress) (*archive.Result, error) {
	arc, idx, stop, err := a.open(ctx, "verify", prog)
	if err != nil {
		return nil, err
	}
	defer arc.Close()
	defer idx.Close()
	m := a.Manifest
	if !full {
		err := archive.VerifyCiphertext(arc, m.Archive)
		stop(err)
		if err != nil {
			return nil, fmt.Errorf("%s: archive: %w", m.ArchiveID, err)
		}
		if err := archive.VerifyCiphertext(idx, m.Index); err != nil {
			return nil, fmt.Errorf("%s: index: %w", m.ArchiveID, err)
		}
		return nil, nil
	}
	res, err := archive.Verify(ctx, m, arc, idx, a.identity(ctx, u))
	stop(err)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.ArchiveID, err)
	}
	return res, nil
}

// Drilled is a drill's outcome, as recorded in the log.
type Drilled struct {
	// Result is "ok", or why not: the restore's failure, or an RTO missed.
	Result   string
	Elapsed  time.Duration // the timed restore
	RTO      time.Duration // the dataset's, 0 if none
	LogIndex uint64        // the backup.drill entry
	Restore  *archive.Result
}

// OK reports whether the drill restored within the RTO.
func (d *Drilled) OK() bool { return d.Result == "ok" }

// Drill restores the archive into a temporary directory (removed after),
// times it against its dataset's RTO and records the result in the log
// (backup.drill). A restore that fails, or an archive that was refused by
// Prove, is recorded as a failed drill and returned as an error; a
// restore over the RTO is recorded and returned without error, not OK.
func (a *Agent) Drill(ctx context.Context, c DrillCluster, arc *Archive, prog Progress) (*Drilled, error) {
	m := arc.Manifest
	tmp, err := os.MkdirTemp("", "custos-drill-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	res, rerr := func() (*archive.Result, error) {
		r, _, err := arc.restore(ctx, c, filepath.Join(tmp, "restore"), archive.RestoreOptions{}, "drill", prog)
		if err != nil {
			return nil, err
		}
		return r.Result, nil
	}()
	d := &Drilled{Elapsed: time.Since(start), Restore: res, Result: "ok"}
	if rerr != nil {
		// The log gets the kind of failure, not the error text, which
		// may name files (names travel only encrypted).
		d.Result = "failed: restore error"
		switch {
		case arc.proof == nil:
			d.Result = "failed: not proved against the log"
		case errors.Is(rerr, archive.ErrIntegrity):
			d.Result = "failed: integrity check"
		}
	}
	if ds, ok := a.p.Dataset(m.Dataset); ok {
		d.RTO = ds.RTO.D()
	}
	if rerr == nil && d.RTO > 0 && d.Elapsed > d.RTO {
		d.Result = fmt.Sprintf("restored, but in %s, over the RTO of %s", d.Elapsed.Round(time.Second), d.RTO)
	}
	details := map[string]string{
		"archive":         m.ArchiveID,
		"dataset":         m.Dataset,
		"result":          d.Result,
		"restore_seconds": fmt.Sprintf("%.3f", d.Elapsed.Seconds()),
		"target":          arc.Target,
	}
	if d.RTO > 0 {
		// The RTO the drill was measured against, so that an auditor
		// reading the log alone can judge it.
		details["rto_seconds"] = strconv.FormatFloat(d.RTO.Seconds(), 'f', -1, 64)
	}
	var aerr error
	d.LogIndex, aerr = c.Attest(ctx, client.AttestRequest{
		Type: client.AttestDrill, KEKID: m.KEK.ID, KEKVersion: m.KEK.Version, Details: details,
	})
	if rerr != nil {
		if aerr != nil {
			return nil, fmt.Errorf("drill of %s failed: %w (and recording it failed: %v)", m.ArchiveID, rerr, aerr)
		}
		return nil, fmt.Errorf("drill of %s failed (recorded in log entry %d): %w", m.ArchiveID, d.LogIndex, rerr)
	}
	if aerr != nil {
		return nil, fmt.Errorf("drill of %s restored but recording it failed: %w", m.ArchiveID, aerr)
	}
	return d, nil
}
