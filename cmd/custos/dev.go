package main

// `custos dev up|down`: a local cluster on 127.0.0.1 with SoftHSM tokens.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
)

// devCommands are the subcommands of `custos dev`.
var devCommands = []command{
	{"up", "start a local cluster: up [--dir DIR] [--nodes 3] [--custosd BIN] [--timeout 90s]", devUp},
	{"down", "stop it: down [--dir DIR]", func(_ context.Context, w io.Writer, args []string) error { return devDown(w, args) }},
	{"bench", "measure key operations on a local cluster", devBench},
	{"bench-backup", "measure backup and restore on a local cluster", devBenchBackup},
	{"grab-shares", "play a compromised node: ask every peer for KEK shares no request backs; fails if any leaks", devGrabShares},
}

func devUsage() string {
	return groupUsage("dev", devCommands, 13, "")
}

func runDevCmd(ctx context.Context, stdout io.Writer, args []string) error {
	return runGroup(ctx, stdout, "dev", devCommands, args, devUsage())
}

func devUp(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("dev up", flag.ContinueOnError)
	dir := fs.String("dir", ".custos-dev", "directory for the cluster's CA, tokens, configs, data and logs")
	nodes := fs.Int("nodes", 3, "number of nodes")
	custosd := fs.String("custosd", "", "custosd binary (default: next to custos, then $PATH)")
	timeout := fs.Duration("timeout", 90*time.Second, "how long to wait for the cluster to form")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := devcluster.Create(devcluster.Options{Dir: *dir, Nodes: *nodes, Custosd: *custosd})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "created cluster %q in %s: dev CA, %d SoftHSM tokens, node and client certificates\n", c.Name, c.Dir, len(c.Nodes))
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	err = c.Up(ctx, func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) })
	if err != nil {
		return fmt.Errorf("%w\nnode logs: %s", err, filepath.Join(c.Dir, "node-*", "custosd.log"))
	}
	if err := c.InitOfficers(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "initialized: officers %s, quorum %d (their keys, certificates and env files are in %s)\n",
		strings.Join(devcluster.DemoOfficers, ", "), devcluster.DemoQuorum, c.OfficersDir())
	cer, err := c.CreateDemoKEK(ctx)
	if err != nil {
		return fmt.Errorf("demo KEK %q: %w", devcluster.DemoKEK, err)
	}
	fmt.Fprintln(w, demoKEKLine(cer))
	fmt.Fprintf(w, "cluster is up; for the custos CLI: source %s\n", filepath.Join(c.Dir, "env"))
	fmt.Fprintf(w, "as an officer: custos officer list --env %s\n", c.OfficerEnv(devcluster.DemoOfficers[0]))
	fmt.Fprintf(w, "as the agent:  custos wrap --kek %s --env %s < data.key > data.key.wrapped\n", devcluster.DemoKEK, filepath.Join(c.Dir, "env"))
	return nil
}

// demoKEKLine says how KEK demo came to be: by the ceremony cer, or
// (cer.ID empty) it already existed.
func demoKEKLine(cer client.Ceremony) string {
	if cer.ID == "" {
		return fmt.Sprintf("KEK %q already exists (custos kek show %s)", devcluster.DemoKEK, devcluster.DemoKEK)
	}
	by := "the demo officers"
	if len(cer.Approvals) > 0 {
		var names []string
		for _, a := range cer.Approvals {
			names = append(names, a.Officer)
		}
		by = strings.Join(names, " and ")
	}
	return fmt.Sprintf("created KEK %q by a kek.create ceremony of %s (proposal %s, executed in log entry %d): agents may wrap and unwrap with it",
		devcluster.DemoKEK, by, cer.ID, cer.Closed)
}

func devDown(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("dev down", flag.ContinueOnError)
	dir := fs.String("dir", ".custos-dev", "the directory `custos dev up` used")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := devcluster.Load(*dir)
	if err != nil {
		return err
	}
	if err := c.StopAll(10 * time.Second); err != nil {
		return err
	}
	fmt.Fprintf(w, "stopped %d nodes of cluster %q (state kept in %s)\n", len(c.Nodes), c.Name, c.Dir)
	return nil
}
