package main

// `custos audit verify`: check an evidence pack offline against a trust
// file, streaming, and say the first thing that fails.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/audit/report"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// verifyJSON is what verify --json prints.
type verifyJSON struct {
	OK                 bool                 `json:"ok"`
	Pack               string               `json:"pack"`
	Trust              string               `json:"trust"`
	Cluster            string               `json:"cluster,omitempty"`
	From               uint64               `json:"from"`
	To                 uint64               `json:"to"`
	Entries            uint64               `json:"entries"`
	Checkpoint         *checkpointJSON      `json:"checkpoint,omitempty"`
	Pinned             *pinnedJSON          `json:"pinned,omitempty"`
	Partial            bool                 `json:"partial"`
	PartialReason      string               `json:"partial_reason,omitempty"`
	CeremoniesVerified int                  `json:"ceremonies_verified"`
	ApprovalsVerified  int                  `json:"approvals_verified"`
	StatementsVerified int                  `json:"statements_verified"`
	Certificates       int                  `json:"certificates"`
	Releases           *audit.ReleaseCounts `json:"releases,omitempty"`
	Policies           *audit.PolicyCounts  `json:"policies,omitempty"`
	Denied             uint64               `json:"denied"`
	Folded             uint64               `json:"folded"`         // denied entries standing for repeats
	FoldedDenials      uint64               `json:"folded_denials"` // the repeats they stand for
	Errored            uint64               `json:"errored"`
	Advanced           bool                 `json:"advanced,omitempty"` // the trust file's pin moved to the pack's checkpoint
	Seconds            float64              `json:"seconds"`
	EntriesPerSecond   float64              `json:"entries_per_second"`
	Failure            *failureJSON         `json:"failure,omitempty"`
}

type checkpointJSON struct {
	Size    uint64 `json:"size"`
	Root    string `json:"root"`
	Signer  string `json:"signer"`   // node id
	KeyName string `json:"key_name"` // custos/<cluster>/<node>
}

type pinnedJSON struct {
	Size     uint64 `json:"size"`
	Root     string `json:"root"`
	Relation string `json:"relation"` // same, extends, prefix
}

type failureJSON struct {
	Kind    string  `json:"kind"`            // pack, entry, checkpoint, consistency, authorisation, trust, io
	Code    string  `json:"code,omitempty"`  // a finding's stable code (release_…, activation_…), when it has one
	Index   *uint64 `json:"index,omitempty"` // the entry concerned
	Line    int     `json:"line,omitempty"`  // the pack line concerned
	Message string  `json:"message"`
}

// errVerifyFailed: the pack did not verify (what failed was printed).
var errVerifyFailed = errors.New("the pack does not verify")

func runAuditVerify(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(s.err)
	trustFile := fs.String("trust", "", "the `FILE` saved by custos audit checkpoint (required)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object (for pipelines); the exit status is the same")
	partial := fs.Bool("partial", false, "accept a pack that starts after the trust file's verified state: ceremonies, officers and quorum are then not checked (the result says partial)")
	advance := fs.Bool("advance", false, "after a full verification, move the trust file's pin to the pack's checkpoint, with the state the log established there, so the next export --since pack verifies in full")
	pos, err := parsePositional(fs, args, "PACK")
	if err != nil {
		return err
	}
	if *trustFile == "" {
		return usagef("--trust FILE is required: the trust file saved by custos audit checkpoint")
	}
	t, err := readTrust(*trustFile)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, vErr := verifyPackFile(pos[0], t, *partial, nil)
	el := time.Since(start)
	j := verifyResult(pos[0], *trustFile, rep, vErr, el)
	if vErr == nil && *advance {
		if rep.Partial {
			vErr = errors.New("--advance: a partial verification establishes no state to pin")
			j.OK, j.Failure = false, &failureJSON{Kind: audit.KindTrust, Message: vErr.Error()}
		} else if n, err := t.t.Advance(rep); err != nil {
			return err
		} else if err := t.save(*trustFile, n); err != nil {
			return err
		} else {
			j.Advanced = true
		}
	}
	if *asJSON {
		if err := json.NewEncoder(s.out).Encode(j); err != nil {
			return err
		}
	} else {
		printVerify(s.out, j, el)
	}
	if vErr != nil {
		return errVerifyFailed
	}
	return nil
}

// verifyResult describes a verification's outcome.
func verifyResult(pack, trust string, rep *audit.Report, err error, el time.Duration) verifyJSON {
	j := verifyJSON{OK: err == nil, Pack: pack, Trust: trust, Seconds: el.Seconds()}
	if err != nil {
		j.Failure = failureOf(err)
		return j
	}
	j.Cluster, j.From, j.To, j.Entries = rep.Cluster, rep.From, rep.To, rep.Entries
	j.EntriesPerSecond = float64(rep.Entries) / max(el.Seconds(), 1e-9)
	c := rep.Checkpoint
	j.Checkpoint = &checkpointJSON{Size: c.Size, Root: rootWords(c.Root), Signer: c.Signer, KeyName: c.KeyName}
	j.Pinned = &pinnedJSON{Size: rep.Pinned.Size, Root: rootWords(rep.Pinned.Root), Relation: rep.Pinned.Relation}
	j.Partial, j.PartialReason = rep.Partial, rep.PartialReason
	j.CeremoniesVerified, j.ApprovalsVerified = rep.CeremoniesVerified, rep.ApprovalsVerified
	j.StatementsVerified, j.Certificates = rep.StatementsVerified, rep.Certificates
	j.Denied, j.Errored = rep.Denied, rep.Errored
	j.Folded, j.FoldedDenials = rep.Folded, rep.FoldedDenials
	rc := rep.Releases
	j.Releases = &rc
	pc := rep.Policies
	j.Policies = &pc
	return j
}

func printVerify(w io.Writer, j verifyJSON, el time.Duration) {
	if f := j.Failure; f != nil {
		where := f.Kind
		if f.Index != nil {
			where = fmt.Sprintf("entry %d", *f.Index)
		} else if f.Kind == audit.KindCheckpoint {
			where = "the checkpoint"
		}
		kind := f.Kind
		if f.Code != "" {
			kind += ", " + f.Code
		}
		fmt.Fprintf(w, "FAIL: %s (%s): %s\n", where, kind, f.Message)
		fmt.Fprintf(w, "%s does not verify against %s: nothing in it can be relied on.\n", j.Pack, j.Trust)
		return
	}
	fmt.Fprintf(w, "OK: %s verifies against %s.\n", j.Pack, j.Trust)
	fmt.Fprintf(w, "  cluster     %s\n", j.Cluster)
	fmt.Fprintf(w, "  entries     %d to %d (%d entries; %d denied, %d errors): every leaf and the tree recomputed\n", j.From, j.To, j.Entries, j.Denied, j.Errored)
	if j.Folded > 0 {
		fmt.Fprintf(w, "  folded      %d denied entries stand for %d more identical refusals (details denials.count, .first, .last)\n", j.Folded, j.FoldedDenials)
	}
	if c := j.Checkpoint; c != nil {
		fmt.Fprintf(w, "  checkpoint  size %d, root %s, signed by %s (%s): ECDSA P-256 and ML-DSA-65 verified\n", c.Size, c.Root, c.Signer, c.KeyName)
	}
	if p := j.Pinned; p != nil {
		fmt.Fprintf(w, "  pinned      size %d, root %s: %s\n", p.Size, p.Root, report.RelationWords(p.Relation))
	}
	fmt.Fprintf(w, "  ceremonies  %d executions checked against the officers and quorum in force (%d officer signatures)\n", j.CeremoniesVerified, j.ApprovalsVerified)
	fmt.Fprintf(w, "  destruction %d node statements, %d certificates checked\n", j.StatementsVerified, j.Certificates)
	if r := j.Releases; r != nil {
		fmt.Fprintf(w, "  releases    %d share releases bound to %d activations, each with the client's signed request verified (%d refused)\n", r.Releases, r.Activations, r.Denied)
		if r.BeforeStart > 0 {
			fmt.Fprintf(w, "              %d releases answer activations before the pack: checked when those were\n", r.BeforeStart)
		}
		if p := j.Policies; p != nil {
			fmt.Fprintf(w, "  policies    %d activations' clients checked against the unwrap access of the KEK's policy in force\n", p.Checked)
			if p.Unknown > 0 {
				fmt.Fprintf(w, "              %d activations not checked: the policy of kek %s was set before the pack and the trust file's state does not hold it (or the verification is partial)\n", p.Unknown, strings.Join(p.UnknownKEKs, ", "))
			}
		}
		if r.Unbound > 0 {
			fmt.Fprintf(w, "WARNING: %d activations and share releases of the earlier format (before the log recorded signed requests): no client request is bound to them; read them in the report.\n", r.Unbound)
		}
	}
	if j.Partial {
		fmt.Fprintf(w, "PARTIAL: %s.\n", j.PartialReason)
	}
	if j.Advanced {
		fmt.Fprintf(w, "Moved the pin in %s to the pack's checkpoint (size %d), with the state the log established there.\n", j.Trust, j.To)
	}
	fmt.Fprintf(w, "Verified in %v: %s entries/s.\n", el.Round(time.Millisecond), rate(j.Entries, el))
}

// verifyPackFile verifies the pack at path against t, streaming.
func verifyPackFile(path string, t *pinnedTrust, partial bool, onEntry func(ledger.Entry) error) (*audit.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return verifyPack(f, t, partial, onEntry) // the pack reader buffers
}
