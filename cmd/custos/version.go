package main

// `custos version`: the build of this binary, for bug reports and for
// checking that a rolling upgrade reached every machine (custosd -version
// prints the same for a node; its /metrics has custos_build_info).

import (
	"context"
	"encoding/json"
	"flag"
	"io"

	"github.com/custos-eu/custos/internal/buildinfo"
)

func runVersionCmd(_ context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	format := addFormatFlag(fs) // json: {"version","revision","time","modified","go_version"}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	in := buildinfo.Read()
	if format.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return in.WriteText(stdout, "custos")
}
