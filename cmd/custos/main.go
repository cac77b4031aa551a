// Command custos is the Custos command-line tool: demo, dev clusters,
// status, officer ceremonies, KEKs, key operations and audit; backup and
// admin commands as they land.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

// command is one `custos` subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, stdout io.Writer, args []string) error
}

var commands = []command{
	{"demo", "walk through threshold custody on three SoftHSM tokens", runDemoCmd},
	{"dev", "run a local cluster: dev up --nodes 3 --dir DIR, dev down --dir DIR", runDevCmd},
	{"status", "show the cluster: leader, members, log size, latest checkpoint", runStatusCmd},
	{"officer", "officer keys and ceremonies: keygen, pubkey, propose, approve, list, show, verify-share", runOfficerCmd},
	{"kek", "KEKs: list, show ID, destruction-certificate ID VERSION", runKEKCmd},
	{"wrap", "agent: wrap a data key with a KEK: wrap --kek ID [--context k=v,…] [--in FILE] [--out FILE] [--batch FILE]", nil},
	{"unwrap", "agent: unwrap a wrapped data key: unwrap [--kek ID] [--context k=v,…] [--in FILE] [--out FILE] [--batch FILE]", nil},
	{"rewrap", "agent: rewrap a wrapped key to its KEK's active version: rewrap [--kek ID] [--context k=v,…] [--in FILE] [--out FILE]", nil},
	{"datakey", "agent: a fresh data key and its wrapped form: datakey --kek ID [--context k=v,…] [--wrapped-only] [--out-wrapped FILE] [--out-plaintext FILE]", nil},
	{"pki", "cluster CA and certificates: pki ca init, issue node, issue client, inspect (see custos pki help)", runPKICmd},
	{"operator", "cluster operator commands: operator init (name the officers, once)", runOperatorCmd},
	{"audit", "auditor: checkpoint, export, verify, report, watch (see custos audit help)", nil},
	{"backup", "agent: run, list, restore, verify, drill, prune, status (see custos backup help)", nil},
	{"version", "print this build: module version, VCS revision and time, Go version [--format json]", runVersionCmd},
}

// stdio are a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// ioCommands run the commands of commands that have no run: those that
// read stdin or write to stderr besides stdout.
var ioCommands = map[string]func(ctx context.Context, s stdio, args []string) error{
	"wrap":    runWrap,
	"unwrap":  runUnwrap,
	"datakey": runDataKey,
	"rewrap":  runRewrap,
	"audit":   runAuditCmd,
	"backup":  runBackupCmd,
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: custos <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(withCPUProfile(func() int { return run(ctx, os.Stdout, os.Stderr, os.Args[1:]) }))
}

// withCPUProfile runs f, writing a CPU profile to $CUSTOS_CPUPROFILE if set
// (to see where a slow backup or restore spends its time).
func withCPUProfile(f func() int) int {
	path := os.Getenv("CUSTOS_CPUPROFILE")
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "custos: CUSTOS_CPUPROFILE: %v\n", err)
		return 1
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		fmt.Fprintf(os.Stderr, "custos: CUSTOS_CPUPROFILE: %v\n", err)
		return 1
	}
	defer pprof.StopCPUProfile()
	return f()
}

// run dispatches to a subcommand, with the process's stdin, and returns
// the process exit code.
func run(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	return runStdio(ctx, stdio{in: os.Stdin, out: stdout, err: stderr}, args)
}

// runStdio is run with the given standard streams. Exit codes, the same
// for every command (docs/cli.md): 0 success, and help asked for (usage on
// stdout); 2 a usage error (usage on stderr); 1 a refusal or a failure.
func runStdio(ctx context.Context, s stdio, args []string) int {
	stdout, stderr := s.out, s.err
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if isHelpArg(args[0]) {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			var err error
			if c.run != nil {
				err = c.run(ctx, stdout, args[1:])
			} else {
				err = ioCommands[c.name](ctx, s, args[1:])
			}
			return exitCode(s, c.name, err)
		}
	}
	fmt.Fprintf(stderr, "custos: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// exitCode reports err of command name and returns the exit code for it.
func exitCode(s stdio, name string, err error) int {
	var he *helpError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &he):
		fmt.Fprint(s.out, strings.TrimRight(he.usage, "\n")+"\n")
		return 0
	case errors.Is(err, flag.ErrHelp):
		// A flag set parsed without parseFlags printed its usage itself.
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(s.err, "custos %s: %v\n", name, err)
		if ue.usage != "" {
			fmt.Fprint(s.err, strings.TrimRight(ue.usage, "\n")+"\n")
		}
		return 2
	}
	fmt.Fprintf(s.err, "custos %s: %v\n", name, err)
	return 1
}

// isHelpArg reports whether a is a request for help in place of a command.
func isHelpArg(a string) bool { return a == "help" || a == "-h" || a == "-help" || a == "--help" }

// helpError is help asked for: usage goes to stdout and custos exits 0.
type helpError struct{ usage string }

func (e *helpError) Error() string { return "help requested" }

// usageError is a command line custos cannot run: an unknown flag or
// command, a missing or extra argument, a bad flag value. custos prints
// it, and usage (when set) on stderr, and exits 2.
type usageError struct {
	err   error
	usage string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef is a usageError with a message and no usage text.
func usagef(format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...)}
}

// parseFlags parses args with fs. -h, -help or --help returns a helpError
// with fs's usage (exit 0, usage on stdout); a bad flag or flag value a
// usageError with it (exit 2, usage on stderr). Every command parses its
// flags with it, so that help and usage errors are the same everywhere.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if err == nil {
		return nil
	}
	var b strings.Builder
	fs.SetOutput(&b)
	fs.Usage()
	fs.SetOutput(io.Discard)
	if errors.Is(err, flag.ErrHelp) {
		return &helpError{usage: b.String()}
	}
	return &usageError{err: err, usage: b.String()}
}

// groupUsage is the usage of a command group: its subcommands, names
// padded to width, then note (if any).
func groupUsage(group string, cmds []command, width int, note string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: custos %s <command> [flags]\n\ncommands:\n", group)
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s %s\n", width, c.name, c.summary)
	}
	b.WriteString(note)
	return b.String()
}

// runGroup runs the subcommand of a group of commands (dispatch).
func runGroup(ctx context.Context, stdout io.Writer, group string, cmds []command, args []string, usage string) error {
	return dispatch(group, cmds, func(c command) string { return c.name },
		func(c command) error { return c.run(ctx, stdout, args[1:]) }, args, usage)
}

// dispatch runs the subcommand of group (e.g. "officer") that args[0]
// names, from cmds; no argument, help, -h or --help is help, an unknown
// subcommand a usage error, both with usage.
func dispatch[C any](group string, cmds []C, name func(C) string, run func(C) error, args []string, usage string) error {
	if len(args) == 0 {
		return &usageError{err: fmt.Errorf("%s needs a command", group), usage: usage}
	}
	if isHelpArg(args[0]) {
		return &helpError{usage: usage}
	}
	for _, c := range cmds {
		if name(c) == args[0] {
			if err := run(c); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return nil
		}
	}
	return &usageError{err: fmt.Errorf("unknown %s command %q", group, args[0]), usage: usage}
}

// outputFormat is --format text|json (also -o): how a command prints its
// result. JSON is one document on stdout with snake_case fields
// (docs/cli.md); messages for people go to stderr then.
type outputFormat struct{ json bool }

func (f *outputFormat) String() string {
	if f != nil && f.json {
		return "json"
	}
	return "text"
}

func (f *outputFormat) Set(s string) error {
	switch s {
	case "text":
		f.json = false
	case "json":
		f.json = true
	default:
		return fmt.Errorf("%q: want text or json", s)
	}
	return nil
}

// addFormatFlag adds --format and its short form -o.
func addFormatFlag(fs *flag.FlagSet) *outputFormat {
	f := &outputFormat{}
	fs.Var(f, "format", "output: text, or json (one JSON document on stdout; see docs/cli.md)")
	fs.Var(f, "o", "short for --format")
	return f
}
