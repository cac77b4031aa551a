package main

// `custos audit checkpoint | export | verify | report | watch`: the
// auditor's commands. Those that talk to the cluster take the API flags of
// every command and prefer the auditor's certificate ($CUSTOS_AUDITOR_CERT
// and $CUSTOS_AUDITOR_KEY, which DIR/env of `custos dev up` exports) over
// the default client certificate; verify and report are offline.

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
)

// Variables naming the auditor's certificate (DIR/env of custos dev up).
const (
	envAuditorCert = "CUSTOS_AUDITOR_CERT"
	envAuditorKey  = "CUSTOS_AUDITOR_KEY"
)

// auditCommand is one subcommand of `custos audit`.
type auditCommand struct {
	name, summary string
	run           func(ctx context.Context, s stdio, args []string) error
}

// auditCommands are the subcommands of `custos audit`.
var auditCommands = []auditCommand{
	{"checkpoint", "fetch, verify and pin the latest checkpoint with the genesis trust anchor: checkpoint --out FILE [--force]", runAuditCheckpoint},
	{"export", "write an evidence pack: export --out PACK [--from I] [--to J] [--since TRUSTFILE]", runAuditExport},
	{"verify", "verify a pack offline: verify PACK --trust FILE [--json] [--partial] [--advance]", runAuditVerify},
	{"report", "a custody report of a verified pack: report PACK --trust FILE --out report.html|report.md [--format html|markdown] [--unverified|--no-verify]", runAuditReport},
	{"watch", "follow the cluster's checkpoints, alert on a fork or rollback: watch --trust FILE [--interval 30s] [--once]", runAuditWatch},
}

func auditUsage() string {
	var b strings.Builder
	b.WriteString("usage: custos audit <command> [flags]\n\ncommands:\n")
	for _, c := range auditCommands {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	b.WriteString("\ncheckpoint, export and watch take the API flags of every command (--env, --addr, --cert, --key, --ca)\n" +
		"and use the auditor's certificate ($" + envAuditorCert + ", $" + envAuditorKey + ") when --cert and --key are not given;\n" +
		"verify and report use no network. The auditor's guide is docs/auditors.md.")
	return b.String()
}

func runAuditCmd(ctx context.Context, s stdio, args []string) error {
	return dispatch("audit", auditCommands, func(c auditCommand) string { return c.name },
		func(c auditCommand) error { return c.run(ctx, s, args[1:]) }, args, auditUsage())
}

// auditorClient builds an API client from the flags, with the auditor's
// certificate unless --cert and --key name one.
func auditorClient(af *apiFlags) (*client.Client, error) {
	if af.cert == "" && af.key == "" {
		cert, err := af.lookup(envAuditorCert)
		if err != nil {
			return nil, err
		}
		key, err := af.lookup(envAuditorKey)
		if err != nil {
			return nil, err
		}
		if cert != "" && key != "" {
			af.cert, af.key = cert, key
		}
	}
	return af.client()
}

// rate formats n items over d as items per second.
func rate(n uint64, d time.Duration) string {
	if d <= 0 {
		d = time.Nanosecond
	}
	return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
}

// rootWords is a checkpoint root hash as the checkpoint writes it.
func rootWords(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

// statFile fails clearly if path is not a readable file.
func statFile(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s %s is a directory", what, path)
	}
	return nil
}
