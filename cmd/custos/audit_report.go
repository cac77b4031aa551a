package main

// `custos audit report`: a custody report of an evidence pack, for a
// compliance officer, in HTML or Markdown. The pack is verified first and a
// pack that fails is not reported on unless asked, and then under a banner.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/audit"
)

func runAuditReport(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("audit report", flag.ContinueOnError)
	fs.SetOutput(s.err)
	out := fs.String("out", "", "the report file to write (required; - for stdout)")
	format := fs.String("format", "", "html or markdown (default: markdown for an --out ending in .md or .markdown, else html)")
	trustFile := fs.String("trust", "", "the trust file to verify the pack against first (required unless --no-verify)")
	noVerify := fs.Bool("no-verify", false, "do not verify the pack (the report says so in a banner)")
	unverified := fs.Bool("unverified", false, "report on a pack that fails verification (the report says so in a banner)")
	partial := fs.Bool("partial", false, "accept a pack that starts after the trust file's verified state (as verify --partial; the report says partial)")
	pos, err := parsePositional(fs, args, "PACK")
	if err != nil {
		return err
	}
	pack := pos[0]
	if *out == "" {
		return errors.New("--out FILE is required (report.html, report.md, or - for stdout)")
	}
	switch *format {
	case "":
		if ext := strings.ToLower(filepath.Ext(*out)); ext == ".md" || ext == ".markdown" {
			*format = "markdown"
		} else {
			*format = "html"
		}
	case "html", "markdown":
	case "md":
		*format = "markdown"
	default:
		return fmt.Errorf("--format %q: html or markdown", *format)
	}
	if *trustFile == "" && !*noVerify {
		return errors.New("--trust FILE is required to verify the pack first (or --no-verify, and the report says it is not verified)")
	}
	if err := statFile(pack, "pack"); err != nil {
		return err
	}

	hdr, err := readPackHeader(pack)
	if err != nil {
		return fmt.Errorf("%s: %w", pack, err)
	}
	var trust *pinnedTrust
	if !*noVerify {
		if trust, err = readTrust(*trustFile); err != nil {
			return err
		}
	}
	r := &custodyReport{Pack: pack, Generated: time.Now().UTC()}
	b := newReportBuilder(r)
	b.followReleases(hdr, trust)
	f, err := os.Open(pack)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	in := io.TeeReader(f, h)
	// One pass: the pack is verified and the report gathered from the
	// entries as they pass; nothing is reported unless the whole pack
	// verifies (or the banner says otherwise).
	var contents *audit.Contents
	if *noVerify {
		r.Verification = "The pack was not verified: the report was made with --no-verify."
		if contents, err = scanPack(in, b.entry); err != nil {
			r.Verification += fmt.Sprintf(" Reading it stopped early: %v.", err)
		}
	} else {
		t := trust
		start := time.Now()
		rep, vErr := verifyPack(in, t, *partial, b.entry)
		el := time.Since(start)
		if vErr != nil {
			fl := failureOf(vErr)
			where := fl.Kind
			if fl.Index != nil {
				where = fmt.Sprintf("entry %d", *fl.Index)
			}
			if !*unverified {
				return fmt.Errorf("%s does not verify against %s: %s: %s; refusing to report on it (--unverified reports anyway, under a banner)", pack, *trustFile, where, fl.Message)
			}
			// Report on what the pack says, under the banner: read it again
			// without verifying.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			h.Reset()
			r = &custodyReport{Pack: pack, Generated: r.Generated}
			b = newReportBuilder(r)
			b.followReleases(hdr, trust)
			r.Verification = fmt.Sprintf("Verification against %s FAILED at %s: %s.", *trustFile, where, fl.Message)
			if contents, err = scanPack(in, b.entry); err != nil {
				r.Verification += fmt.Sprintf(" Reading it stopped early: %v.", err)
			}
		} else {
			contents = rep.Pack
			r.Verified = true
			r.CheckpointSigner = rep.Checkpoint.KeyName
			how := fmt.Sprintf("which pins the genesis of cluster %s and a checkpoint of size %d", t.cluster(), rep.Pinned.Size)
			r.Verification = fmt.Sprintf("Offline, against trust file %s (%s; %s): every entry's leaf and the tree root recomputed up to the checkpoint of size %d signed by %s, %d ceremony executions checked against the officers and quorum in force, %d destruction statements checked (%d entries, %v).",
				*trustFile, how, relationWords(&pinnedJSON{Relation: rep.Pinned.Relation}), rep.Checkpoint.Size, rep.Checkpoint.KeyName,
				rep.CeremoniesVerified, rep.StatementsVerified, rep.Entries, el.Round(time.Millisecond))
			rc := rep.Releases
			r.Verification += fmt.Sprintf(" %d share releases checked against %d activations and their clients' signed requests.", rc.Releases, rc.Activations)
			r.Verification += activationPolicyWords(rep.Policies)
			if rc.Unbound > 0 {
				r.Verification += fmt.Sprintf(" %d activations and releases are of the earlier format, bound to no signed request (flagged below).", rc.Unbound)
			}
			if rep.Partial {
				r.Verification += " PARTIAL: " + rep.PartialReason + "."
			}
		}
	}
	if _, err := io.Copy(h, f); err != nil { // anything the reader left unread
		return err
	}
	r.PackSHA256 = hex.EncodeToString(h.Sum(nil))
	if contents != nil {
		b.contents(contents)
	}
	b.finish()

	var buf bytes.Buffer
	if *format == "markdown" {
		err = r.writeMarkdown(&buf)
	} else {
		err = r.writeHTML(&buf)
	}
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = s.out.Write(buf.Bytes())
		return err
	}
	if err := atomicfile.Write(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	status := "verified"
	if !r.Verified {
		status = "NOT VERIFIED"
	}
	fmt.Fprintf(s.out, "Wrote %s (%s, %s): cluster %s, entries %d to %d, %d KEKs, %d unwraps, %d denials, %d ceremonies, %d destroyed versions, %d restore drills (%d missed, %d datasets without one).\n",
		*out, *format, status, r.Cluster, r.From, r.To, len(r.KEKs), r.UnwrapTotal, r.DenialTotal, len(r.Ceremonies), len(r.Destroyed),
		r.DrillTotal, r.DrillMisses, r.Undrilled)
	return nil
}
