// Build: a custody report of an evidence pack, gathered in the same pass
// that verifies it (or, asked, of a pack that is not verified, under a
// banner).

package report

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Options say what Build verifies the pack against and how the report
// names things.
type Options struct {
	Pack       string       // the pack as the report names it (its path)
	Trust      *audit.Trust // the trust file to verify against; nil: not verified (the report says so)
	TrustName  string       // the trust file as the report names it
	Partial    bool         // accept a partial pack (audit.Options.AllowPartial); the report says partial
	Unverified bool         // report on a pack that fails verification, under a banner
	Generated  time.Time    // when the report is made
}

// NotVerifiedError: the pack does not verify against Options.Trust and
// Options.Unverified is not set. Where is "entry N" or the failure's kind.
type NotVerifiedError struct {
	Where, Msg string
	Err        error // audit.Verify's error
}

func (e *NotVerifiedError) Error() string {
	return "the pack does not verify: " + e.Where + ": " + e.Msg
}

func (e *NotVerifiedError) Unwrap() error { return e.Err }

// Build reads the pack from r, verifies it against o.Trust as it gathers
// the report, and returns the report. Nothing is reported on unless the
// whole pack verifies: a pack that fails is a *NotVerifiedError, or, with
// o.Unverified, read again from the start and reported on under a banner.
// Without o.Trust the pack is not verified and the report says so.
func Build(r io.ReadSeeker, o Options) (*Report, error) {
	hdr, err := readHeader(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Pack, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	rep := &Report{Pack: o.Pack, Generated: o.Generated}
	b := newReportBuilder(rep)
	b.followReleases(hdr, o.Trust)
	h := sha256.New()
	in := io.TeeReader(r, h)
	// One pass: the pack is verified and the report gathered from the
	// entries as they pass.
	var contents *audit.Contents
	if o.Trust == nil {
		rep.Verification = "The pack was not verified: the report was made with --no-verify."
		if contents, err = scanPack(in, b.entry); err != nil {
			rep.Verification += fmt.Sprintf(" Reading it stopped early: %v.", err)
		}
	} else {
		t := o.Trust
		start := time.Now()
		vr, vErr := audit.Verify(in, t, audit.Options{AllowPartial: o.Partial, OnEntry: b.entry})
		el := time.Since(start)
		if vErr != nil {
			where, msg := failureWords(vErr)
			if !o.Unverified {
				return nil, &NotVerifiedError{Where: where, Msg: msg, Err: vErr}
			}
			// Report on what the pack says, under the banner: read it again
			// without verifying.
			if _, err := r.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			h.Reset()
			rep = &Report{Pack: o.Pack, Generated: rep.Generated}
			b = newReportBuilder(rep)
			b.followReleases(hdr, t)
			rep.Verification = fmt.Sprintf("Verification against %s FAILED at %s: %s.", o.TrustName, where, msg)
			if contents, err = scanPack(in, b.entry); err != nil {
				rep.Verification += fmt.Sprintf(" Reading it stopped early: %v.", err)
			}
		} else {
			contents = vr.Pack
			rep.Verified = true
			rep.CheckpointSigner = vr.Checkpoint.KeyName
			how := fmt.Sprintf("which pins the genesis of cluster %s and a checkpoint of size %d", t.Cluster, vr.Pinned.Size)
			rep.Verification = fmt.Sprintf("Offline, against trust file %s (%s; %s): every entry's leaf and the tree root recomputed up to the checkpoint of size %d signed by %s, %d ceremony executions checked against the officers and quorum in force, %d destruction statements checked (%d entries, %v).",
				o.TrustName, how, RelationWords(vr.Pinned.Relation), vr.Checkpoint.Size, vr.Checkpoint.KeyName,
				vr.CeremoniesVerified, vr.StatementsVerified, vr.Entries, el.Round(time.Millisecond))
			rc := vr.Releases
			rep.Verification += fmt.Sprintf(" %d share releases checked against %d activations and their clients' signed requests.", rc.Releases, rc.Activations)
			rep.Verification += activationPolicyWords(vr.Policies)
			if rc.Unbound > 0 {
				rep.Verification += fmt.Sprintf(" %d activations and releases are of the earlier format, bound to no signed request (flagged below).", rc.Unbound)
			}
			if vr.Partial {
				rep.Verification += " PARTIAL: " + vr.PartialReason + "."
			}
		}
	}
	if _, err := io.Copy(h, r); err != nil { // anything the reader left unread
		return nil, err
	}
	rep.PackSHA256 = hex.EncodeToString(h.Sum(nil))
	if contents != nil {
		b.contents(contents)
	}
	return b.finish(), nil
}

// failureWords says where a verification failed and what failed.
func failureWords(err error) (where, msg string) {
	var f *audit.Failure
	if !errors.As(err, &f) {
		return "io", err.Error()
	}
	where, msg = f.Kind, f.Msg
	if f.Index >= 0 {
		where = fmt.Sprintf("entry %d", f.Index)
	}
	if errors.Is(err, audit.ErrPartial) {
		msg += audit.PartialHint
	}
	return where, msg
}

// RelationWords says how a pack relates to the pinned checkpoint
// (audit.Report's Pinned.Relation).
func RelationWords(relation string) string {
	switch relation {
	case audit.RelationSame:
		return "the pack's checkpoint is the pinned one"
	case audit.RelationExtends:
		return "the pack's log extends it: the log only grew since"
	case audit.RelationPrefix:
		return "the pack's log is a proven prefix of it"
	}
	return relation
}

// activationPolicyWords says how many activations were checked against their KEK's
// policy, and which KEKs' policies were not followed.
func activationPolicyWords(p audit.PolicyCounts) string {
	s := fmt.Sprintf(" %d activations checked against the unwrap access of their KEK's policy in force.", p.Checked)
	if p.Unknown > 0 {
		s += fmt.Sprintf(" %d activations of KEKs whose policy this verification did not follow (%s: set before the pack, and not held by the trust file's state, or a partial verification) were not checked against policy.", p.Unknown, strings.Join(p.UnknownKEKs, ", "))
	}
	return s
}

// readHeader reads a pack's header record.
func readHeader(r io.Reader) (audit.Header, error) {
	rec, err := audit.NewReader(r).Next()
	if err != nil {
		return audit.Header{}, err
	}
	h, ok := rec.(*audit.Header)
	if !ok {
		return audit.Header{}, errors.New("the pack does not start with its header")
	}
	return *h, nil
}

// scanPack reads a pack without verifying it (the reader checks its syntax
// and order only), calling onEntry with each entry in order. Unlike
// audit.Scan it returns the other records it read also when it stops at
// an error: what an unverified report shows.
func scanPack(r io.Reader, onEntry func(ledger.Entry) error) (*audit.Contents, error) {
	c := &audit.Contents{}
	rd := audit.NewReader(r)
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		switch rec := rec.(type) {
		case *audit.Header:
			c.Header = *rec
		case *audit.NodeKeys:
			c.NodeKeys = append(c.NodeKeys, rec.Text)
		case *audit.Officer:
			c.Officers = append(c.Officers, *rec)
		case *audit.Ceremony:
			c.Ceremonies = append(c.Ceremonies, *rec)
		case *audit.Certificate:
			c.Certificates = append(c.Certificates, rec.DestructionCertificate)
		case *audit.Frontier:
			c.Frontier = rec
		case *audit.EntryRecord:
			e, err := ledger.ParseEntry(rec.Canonical)
			if err == nil && e.Index != rec.Index {
				err = fmt.Errorf("it says it is entry %d", e.Index)
			}
			if err != nil {
				return c, fmt.Errorf("entry %d: %w", rec.Index, err)
			}
			if err := onEntry(e); err != nil {
				return c, err
			}
		case *audit.CheckpointRecord:
			c.Checkpoint = rec.Note
		case *audit.Consistency:
			c.Consistency = rec
		}
	}
}

// checkpointBody parses a signed checkpoint's body, checking no signature.
func checkpointBody(note []byte) (ledger.Checkpoint, error) {
	for i := len(note) - 2; i >= 0; i-- {
		if note[i] == '\n' && note[i+1] == '\n' {
			return ledger.ParseCheckpoint(note[:i+1])
		}
	}
	return ledger.Checkpoint{}, errors.New("not a signed note")
}

// rootWords is a checkpoint root hash as the checkpoint writes it.
func rootWords(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

// digest is "sha256:" and the hex SHA-256 of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
