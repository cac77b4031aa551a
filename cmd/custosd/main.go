// Command custosd is a Custos node: it opens the node's HSM token, joins or
// forms the cluster, and serves the API over mutual TLS.
//
//	custosd -config /etc/custos/node.toml
//	custosd -config /etc/custos/node.toml -describe > node.json   # for a node.add ceremony
//	custosd -config /etc/custos/node.toml -csr > node.csr         # for the cluster CA
//	custosd -version                                              # module version, commit, Go
//
// The node's TLS key (API, raft, and as a client of other nodes) is an
// ECDSA P-256 key inside its HSM token, never a file: -csr makes it on
// first use and prints a certificate request for it, naming the node's
// identity and the hosts of its API and raft advertise addresses; the
// cluster CA signs it into the certificate file tls.cert names.
//
// The configuration file is described in package nodecfg. On first start a
// node with bootstrap = true forms the cluster (genesis); a node with a
// join list asks those nodes, with backoff, until the leader has added it.
// Either way a node with state simply rejoins its cluster. SIGTERM or
// SIGINT shut it down gracefully: the API stops taking requests and
// finishes the ones in flight (bounded), then raft and the state database
// close, then the token.
//
// With [health] addr set, it also serves GET /livez and GET /readyz on that
// address, plain HTTP without authentication, for load balancers (see
// docs/monitoring.md).
//
// Exit status: 0 after a graceful shutdown (and for -version and -help), 2 for a usage or configuration
// error (the message says which setting or file), 1 for any other failure,
// including a join the cluster refused for good.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/custos-eu/custos/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// configError marks a failure the operator fixes in the configuration or
// the files it names: exit status 2.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// run runs the daemon until ctx ends and returns the exit status; -describe
// and -csr print to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("custosd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the node's configuration file (TOML)")
	describe := fs.Bool("describe", false, "print the node's description (id, region, addresses, public keys) as JSON and exit: the node.json officers need for a node.add ceremony. Creates the node's HSM keys on first use")
	csr := fs.Bool("csr", false, "print a PEM certificate request for the node's TLS key and exit, for the cluster CA to sign into tls.cert. Creates the key in the node's HSM on first use and reuses it afterwards; starts no listener")
	version := fs.Bool("version", false, "print the build's module version, VCS revision, its time, whether it was modified, and the Go version, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		if fs.NArg() > 0 || *describe || *csr {
			fmt.Fprintln(stderr, "usage: custosd -version")
			return 2
		}
		if err := buildinfo.Read().WriteText(stdout, "custosd"); err != nil {
			return 1
		}
		return 0
	}
	if *path == "" || fs.NArg() > 0 || *describe && *csr {
		fmt.Fprintln(stderr, "usage: custosd -config FILE [-describe | -csr]\n       custosd -version")
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "custosd: %v\n", err)
		return 2
	}
	log := newLogger(cfg.Log.Format, cfg.Log.Level, stderr)
	var out io.Writer
	if *describe {
		out = stdout
	}
	if *csr {
		err = printCSR(cfg, log, stdout)
	} else {
		err = daemon(ctx, cfg, log, out)
	}
	var ce *configError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		log.Error("custosd: configuration error", slog.Any("err", err))
		fmt.Fprintf(stderr, "custosd: %v\n", err)
		return 2
	default:
		log.Error("custosd: failed", slog.Any("err", err))
		return 1
	}
}

// newLogger logs to w in format ("json" or "text") at level.
func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // nodecfg validated it
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
