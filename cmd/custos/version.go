package main

// `custos version`: the build of this binary, for bug reports and for
// checking that a rolling upgrade reached every machine (custosd -version
// prints the same for a node; its /metrics has custos_build_info).

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/custos-eu/custos/internal/buildinfo"
)

func runVersionCmd(_ context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	format := fs.String("format", "text", "output format: text, or json ({\"version\",\"revision\",\"time\",\"modified\",\"go_version\"})")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	in := buildinfo.Read()
	switch *format {
	case "text":
		return in.WriteText(stdout, "custos")
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return fmt.Errorf("--format %q: want text or json", *format)
}
