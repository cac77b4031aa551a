package main

// `custos audit report`: a custody report of an evidence pack, for a
// compliance officer, in HTML or Markdown (keysvc/audit/report). The pack
// is verified first and a pack that fails is not reported on unless asked,
// and then under a banner.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/audit/report"
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
		return usagef("--out FILE is required (report.html, report.md, or - for stdout)")
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
		return usagef("--trust FILE is required to verify the pack first (or --no-verify, and the report says it is not verified)")
	}
	if err := statFile(pack, "pack"); err != nil {
		return err
	}

	o := report.Options{Pack: pack, TrustName: *trustFile, Partial: *partial, Unverified: *unverified, Generated: time.Now().UTC()}
	if !*noVerify {
		t, err := readTrust(*trustFile)
		if err != nil {
			return err
		}
		o.Trust = t.t
	}
	f, err := os.Open(pack)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := report.Build(f, o)
	var nv *report.NotVerifiedError
	if errors.As(err, &nv) {
		return fmt.Errorf("%s does not verify against %s: %s: %s; refusing to report on it (--unverified reports anyway, under a banner)", pack, *trustFile, nv.Where, nv.Msg)
	}
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	if *format == "markdown" {
		err = r.Markdown(&buf)
	} else {
		err = r.HTML(&buf)
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
