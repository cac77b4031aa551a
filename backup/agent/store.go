package agent

// The store layout. An archive is three objects on a target, under the
// dataset's name:
//
//	DATASET/ARCHIVE.age            the age file of tar → zstd
//	DATASET/ARCHIVE.index.age      the encrypted index (names, per-file hashes)
//	DATASET/ARCHIVE.manifest.json  the clear manifest (ids, sizes, checksums,
//	                               policy decision, transfer receipt)
//
// The manifest is uploaded last: an archive without one is incomplete and
// is not listed. Nothing is kept locally: a listing reads the targets.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/target"
)

// Object name suffixes.
const (
	SuffixArchive  = ".age"
	SuffixIndex    = ".index.age"
	SuffixManifest = ".manifest.json"
)

// maxManifest bounds a manifest read from a target.
const maxManifest = 1 << 20

// ObjectNames returns the names of archive id's archive, index and
// manifest objects.
func ObjectNames(dataset, id string) (arc, idx, man string) {
	base := dataset + "/" + id
	return base + SuffixArchive, base + SuffixIndex, base + SuffixManifest
}

// readManifest reads and parses a manifest object.
func readManifest(ctx context.Context, t target.Target, name string) (*archive.Manifest, error) {
	rc, _, err := t.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%s: manifest over %d bytes", name, maxManifest)
	}
	m, err := archive.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// Listed is one archive found on a target.
type Listed struct {
	Target   string // the policy's name of the target
	Manifest *archive.Manifest
}

// List lists the complete archives (those with a manifest) of dataset, or
// of every dataset when empty, on the named targets, oldest first. A
// manifest that is unreadable or stored under another archive's name is
// skipped, with a line on the Config's Warn.
func (a *Agent) List(ctx context.Context, targets []string, dataset string) ([]Listed, error) {
	var out []Listed
	for _, name := range targets {
		t, err := a.openTarget(ctx, name)
		if err != nil {
			return nil, err
		}
		prefix := ""
		if dataset != "" {
			prefix = dataset + "/"
		}
		objs, err := t.List(ctx, prefix)
		if err != nil {
			closeTarget(t)
			return nil, fmt.Errorf("target %q: %w", name, err)
		}
		for _, o := range objs {
			if !strings.HasSuffix(o.Name, SuffixManifest) {
				continue
			}
			m, err := readManifest(ctx, t, o.Name)
			if err != nil {
				fmt.Fprintf(a.warn, "warning: target %q: %v\n", name, err)
				continue
			}
			if _, _, want := ObjectNames(m.Dataset, m.ArchiveID); want != o.Name {
				fmt.Fprintf(a.warn, "warning: target %q: %s holds the manifest of %s/%s\n", name, o.Name, m.Dataset, m.ArchiveID)
				continue
			}
			out = append(out, Listed{Target: name, Manifest: m})
		}
		closeTarget(t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ci, cj := out[i].Manifest.Created, out[j].Manifest.Created; !ci.Equal(cj) {
			return ci.Before(cj)
		}
		return out[i].Manifest.ArchiveID < out[j].Manifest.ArchiveID
	})
	return out, nil
}

// Archive is an archive found on a target, open until Close. Restore,
// Verify and Drill read it only once Prove has proved its manifest.
type Archive struct {
	Manifest *archive.Manifest
	Target   string // the policy's name of the target holding it

	t        target.Target
	proof    *Transfer
	proofErr error
}

// Close closes the archive's target.
func (a *Archive) Close() {
	if a.t != nil {
		closeTarget(a.t)
		a.t = nil
	}
}

// Find finds archive id on the named targets: the first target holding its
// manifest. The manifest is not proved yet (Prove).
func (a *Agent) Find(ctx context.Context, targets []string, id string) (*Archive, error) {
	if !archive.ValidID(id) {
		return nil, fmt.Errorf("%q is not an archive id", id)
	}
	for _, name := range targets {
		t, err := a.openTarget(ctx, name)
		if err != nil {
			return nil, err
		}
		objs, err := t.List(ctx, "")
		if err != nil {
			closeTarget(t)
			return nil, fmt.Errorf("target %q: %w", name, err)
		}
		for _, o := range objs {
			if strings.HasSuffix(o.Name, "/"+id+SuffixManifest) {
				m, err := readManifest(ctx, t, o.Name)
				if err != nil {
					closeTarget(t)
					return nil, fmt.Errorf("target %q: %w", name, err)
				}
				if m.ArchiveID != id {
					closeTarget(t)
					return nil, fmt.Errorf("target %q: %s describes archive %s: %w", name, o.Name, m.ArchiveID, archive.ErrIntegrity)
				}
				return &Archive{Manifest: m, Target: name, t: t}, nil
			}
		}
		closeTarget(t)
	}
	return nil, fmt.Errorf("archive %s not found on target(s) %s", id, strings.Join(targets, ", "))
}

// openParts opens the archive's archive and index objects, counting the
// archive's bytes read into done (if set).
func (a *Archive) openParts(ctx context.Context, done *atomic.Int64) (arc, idx io.ReadCloser, err error) {
	m := a.Manifest
	an, in, _ := ObjectNames(m.Dataset, m.ArchiveID)
	arc, _, err = a.t.Get(ctx, an)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", an, err)
	}
	idx, _, err = a.t.Get(ctx, in)
	if err != nil {
		arc.Close()
		return nil, nil, fmt.Errorf("%s: %w", in, err)
	}
	if done != nil {
		arc = countingReadCloser{arc, done}
	}
	return arc, idx, nil
}

// countingReadCloser adds the bytes read through it to n.
type countingReadCloser struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReadCloser) Read(b []byte) (int, error) {
	k, err := c.ReadCloser.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// deleteArchive deletes an archive's objects: the archive first (if the
// store locks it, nothing is deleted), then the index, the manifest last,
// so an interrupted prune leaves a listed archive that the next prune
// finishes. Objects already gone are skipped.
func deleteArchive(ctx context.Context, t target.Target, m *archive.Manifest) error {
	an, in, mn := ObjectNames(m.Dataset, m.ArchiveID)
	for _, name := range []string{an, in, mn} {
		if err := t.Delete(ctx, name); err != nil && !errors.Is(err, target.ErrNotFound) {
			return fmt.Errorf("deleting %s: %w", name, err)
		}
	}
	return nil
}

// SourceBytes sums the sizes of the regular files under sources (what a
// backup will read; errors are left for the backup to report).
func SourceBytes(sources []string) int64 {
	var n int64
	for _, src := range sources {
		filepath.WalkDir(src, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}
