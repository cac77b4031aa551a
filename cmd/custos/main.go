// Command custos is the Custos command-line tool: demo, dev clusters,
// status, officer ceremonies, KEKs, key operations and audit; backup and
// admin commands as they land.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
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
	{"wrap", "agent: wrap a data key with a KEK: wrap --kek ID [--context k=v,…] [--in FILE] [--out FILE]", nil},
	{"unwrap", "agent: unwrap a wrapped data key: unwrap [--kek ID] [--context k=v,…] [--in FILE] [--out FILE]", nil},
	{"datakey", "agent: a fresh data key and its wrapped form: datakey --kek ID [--context k=v,…] [--wrapped-only] [--out-wrapped FILE] [--out-plaintext FILE]", nil},
	{"pki", "cluster CA and certificates: pki ca init, issue node, issue client, inspect (see custos pki help)", runPKICmd},
	{"operator", "cluster operator commands: operator init (name the officers, once)", runOperatorCmd},
	{"audit", "auditor: checkpoint, export, verify, report, watch (see custos audit help)", nil},
	{"backup", "agent: run, list, restore, verify, drill, prune, status (see custos backup help)", nil},
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

// runStdio is run with the given standard streams.
func runStdio(ctx context.Context, s stdio, args []string) int {
	stdout, stderr := s.out, s.err
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		return 2
	}
	for _, c := range commands {
		if c.name == args[0] {
			var err error
			if c.run != nil {
				err = c.run(ctx, stdout, args[1:])
			} else {
				err = ioCommands[c.name](ctx, s, args[1:])
			}
			if err != nil {
				if err == flag.ErrHelp {
					return 2
				}
				fmt.Fprintf(stderr, "custos %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "custos: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}
