package main

// `custos status`: the cluster as an operator wants to see it — leader,
// members, log size, latest checkpoint — and the connection flags other
// API commands share.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// Environment variables naming the cluster and the client's TLS files, as
// `custos dev up` exports them in DIR/env.
const (
	envAddr = client.EnvAddr
	envCert = client.EnvCert
	envKey  = client.EnvKey
	envCA   = client.EnvCA
)

// apiFlags are the flags of every command that calls the API. Each falls
// back to the file given with --env, then to the environment variable.
type apiFlags struct {
	env, addr, cert, key, ca string
	timeout                  time.Duration

	// files are the TLS files client resolved.
	files identity.TLSFiles
}

func addAPIFlags(fs *flag.FlagSet) *apiFlags {
	f := &apiFlags{}
	fs.StringVar(&f.env, "env", "", "read "+envAddr+", "+envCert+", "+envKey+" and "+envCA+" from this file of shell exports (the DIR/env of `custos dev up`, or DIR)")
	fs.StringVar(&f.addr, "addr", "", "API base URLs, comma-separated (default $"+envAddr+")")
	fs.StringVar(&f.cert, "cert", "", "client certificate file (default $"+envCert+")")
	fs.StringVar(&f.key, "key", "", "client key file (default $"+envKey+")")
	fs.StringVar(&f.ca, "ca", "", "cluster CA certificate file (default $"+envCA+")")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "bound on each API request")
	return f
}

// client builds an API client from the flags, the env file and the
// environment, in that order of precedence.
func (f *apiFlags) client() (*client.Client, error) {
	path := f.env
	if fi, err := os.Stat(path); path != "" && err == nil && fi.IsDir() {
		path = filepath.Join(path, "env")
	}
	st, err := client.ResolveSettings(client.Settings{Addr: f.addr, TLSFiles: identity.TLSFiles{Cert: f.cert, Key: f.key, CA: f.ca}}, path)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, m := range []struct{ val, flag, env string }{
		{st.Addr, "--addr", envAddr}, {st.Cert, "--cert", envCert}, {st.Key, "--key", envKey}, {st.CA, "--ca", envCA},
	} {
		if m.val == "" {
			missing = append(missing, m.flag+" or $"+m.env)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no cluster to talk to: set %s (or --env DIR/env after `custos dev up`)", strings.Join(missing, ", "))
	}
	cfg := st.Config(f.timeout)
	cfg.SeenFile = seenFile(st.CA)
	f.files = cfg.TLSFiles
	return client.New(cfg)
}

// seenFile is where the CLI keeps the largest key-op log size it has seen
// for the cluster whose CA file is ca (client.Config.SeenFile): in the user's
// cache directory, named by the CA's hash. "" when there is none.
func seenFile(ca string) string {
	b, err := os.ReadFile(ca)
	dir, derr := os.UserCacheDir()
	if err != nil || derr != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return filepath.Join(dir, "custos", "log-size-"+hex.EncodeToString(sum[:8]))
}

func runStatusCmd(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	af := addAPIFlags(fs)
	format := addFormatFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	defer c.Close()
	if format.json {
		return statusJSON(ctx, stdout, c, af.files)
	}
	return status(ctx, stdout, c, af.files)
}

// memberHealth is one member's answer to a health check, and the
// certificates it presented.
type memberHealth struct {
	ok    bool
	err   error
	certs servedCerts
}

// status prints the cluster's state and returns an error, after printing,
// if the cluster cannot serve: no leader, or no verifiable checkpoint.
// Certificates with less than certWarning left (the members', their CA,
// and those of files, the CLI's own) are warned of, without failing.
func status(ctx context.Context, w io.Writer, c *client.Client, files identity.TLSFiles) error {
	st, err := c.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("cannot reach the cluster: %w", err)
	}
	var tc *tls.Config
	if files.Cert != "" {
		if tc, err = identity.ClientConfig(files); err != nil {
			return err
		}
	}
	health := checkMembers(ctx, c, tc, st.Members)

	var problems []string
	leader := "none known (an election may be under way)"
	if st.Leader.ID != "" {
		leader = st.Leader.ID
		if m := member(st, st.Leader.ID); m != nil && m.Region != "" {
			leader += " in " + m.Region
		}
		if st.Leader.APIAddr != "" {
			leader += ", at " + st.Leader.APIAddr
		}
	} else {
		problems = append(problems, "no leader")
	}
	fmt.Fprintf(w, "Cluster %q, as node %s (%s) sees it\n", st.Cluster, st.NodeID, st.Region)
	fmt.Fprintf(w, "Leader:  %s\n", leader)
	voters := countVoters(st.Members)
	fmt.Fprintf(w, "Members: %d (%d voters; %d of them must be up for the log to accept entries)\n", len(st.Members), voters, voters/2+1)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tREGION\tROLE\tAPI\tRAFT\tHEALTH")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.ID, dash(m.Region), memberRole(m), dash(m.APIAddr), dash(m.RaftAddr), health[m.ID].String())
	}
	tw.Flush()
	if len(st.AllowedRegions) > 0 {
		fmt.Fprintf(w, "Allowed regions: %s\n", strings.Join(st.AllowedRegions, " "))
	}
	if st.Initialized {
		fmt.Fprintf(w, "Officers: %s (quorum %d; default KEK threshold %d; state version %d)\n",
			strings.Join(st.Officers, " "), st.Quorum, st.DefaultThreshold, st.StateVersion)
	} else {
		fmt.Fprintln(w, "Officers: none yet (custos operator init names them)")
	}
	fmt.Fprintf(w, "\nKey-op log: %d entries on %s", st.LogSize, st.NodeID)
	if st.NotReady != "" {
		fmt.Fprintf(w, " (not ready: %s)", st.NotReady)
	}
	fmt.Fprintln(w)

	if err := printCheckpoint(ctx, w, c, st); err != nil {
		fmt.Fprintf(w, "Latest checkpoint: unavailable: %v\n", err)
		problems = append(problems, "no verifiable checkpoint")
	}
	printCertificates(w, certificates(st.Members, health, files), now())
	if len(problems) > 0 {
		return fmt.Errorf("cluster %q is not serving: %s", st.Cluster, strings.Join(problems, ", "))
	}
	return nil
}

// clusterCheckpoint fetches the leader's checkpoint and verifies it against
// the node keys the cluster publishes; it returns it and its signer's key name.
func clusterCheckpoint(ctx context.Context, c *client.Client, st client.Status) (ledger.Checkpoint, string, error) {
	note, err := c.Checkpoint(ctx)
	if err != nil {
		return ledger.Checkpoint{}, "", err
	}
	keys, err := c.NodeKeys(ctx)
	if err != nil {
		return ledger.Checkpoint{}, "", fmt.Errorf("node keys: %w", err)
	}
	return ledger.VerifyCheckpoint(note, ledger.Origin(st.Cluster), keys...)
}

// printCheckpoint says who signed the latest checkpoint.
func printCheckpoint(ctx context.Context, w io.Writer, c *client.Client, st client.Status) error {
	cp, signer, err := clusterCheckpoint(ctx, c, st)
	if err != nil {
		return err
	}
	node := strings.TrimPrefix(signer, ledger.KeyName(st.Cluster, ""))
	fmt.Fprintf(w, "Latest checkpoint: %d entries, root hash %s\n", cp.Size, base64.StdEncoding.EncodeToString(cp.Hash[:]))
	fmt.Fprintf(w, "  signed by node %s (key %s) with ECDSA P-256 in its HSM and ML-DSA-65;\n", node, signer)
	fmt.Fprintf(w, "  both signatures verify against the node keys the cluster publishes (an auditor checks them against keys kept apart)\n")
	return nil
}

// checkMembers asks every member with an API address for its health, in
// parallel, each bounded, and with tc (when not nil) notes the
// certificates it presents.
func checkMembers(ctx context.Context, c *client.Client, tc *tls.Config, members []client.Member) map[string]memberHealth {
	out := make(map[string]memberHealth, len(members))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		if m.APIAddr == "" {
			continue
		}
		wg.Go(func() {
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := c.NodeHealth(hctx, m.APIAddr)
			h := memberHealth{ok: err == nil, err: err}
			if tc != nil {
				h.certs = probeCerts(hctx, tc, m.APIAddr)
			}
			mu.Lock()
			out[m.ID] = h
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (h memberHealth) String() string {
	var ae *client.APIError
	switch {
	case h.ok:
		return "ready"
	case h.err == nil:
		return "unknown (no API address)"
	case errors.As(h.err, &ae):
		return "not ready: " + ae.Message
	case errors.Is(h.err, context.DeadlineExceeded):
		return "no answer"
	}
	return "unreachable"
}

func memberRole(m client.Member) string {
	switch {
	case !m.Registered:
		return "in raft only, not registered"
	case !m.Voter:
		return "registered, not yet a voter"
	case m.Leader:
		return "leader"
	}
	return "follower"
}

func countVoters(ms []client.Member) int {
	n := 0
	for _, m := range ms {
		if m.Voter {
			n++
		}
	}
	return n
}

func member(st client.Status, id string) *client.Member {
	for i := range st.Members {
		if st.Members[i].ID == id {
			return &st.Members[i]
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statusReport is custos status --format json: the answering node's status
// as the API gives it, each member's health, the verified latest
// checkpoint, the certificates' validity, and what stops the cluster
// serving (problems; serving is false, and the exit status 1, when any).
type statusReport struct {
	client.Status
	Health          map[string]string `json:"health"` // member id -> ready, not ready: …, unreachable, no answer
	Checkpoint      *checkpointJSON   `json:"checkpoint"`
	CheckpointError string            `json:"checkpoint_error,omitempty"`
	Certificates    []certJSON        `json:"certificates"`
	Problems        []string          `json:"problems"`
	Serving         bool              `json:"serving"`
}

type certJSON struct {
	What     string     `json:"what"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	DaysLeft *int       `json:"days_left,omitempty"` // whole days; negative once expired
	Expired  bool       `json:"expired"`
	Warning  bool       `json:"warning"` // expired, unreadable, or under 30 days left
	Error    string     `json:"error,omitempty"`
}

func statusJSON(ctx context.Context, w io.Writer, c *client.Client, files identity.TLSFiles) error {
	st, err := c.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("cannot reach the cluster: %w", err)
	}
	var tc *tls.Config
	if files.Cert != "" {
		if tc, err = identity.ClientConfig(files); err != nil {
			return err
		}
	}
	health := checkMembers(ctx, c, tc, st.Members)
	r := statusReport{Status: st, Health: map[string]string{}, Certificates: []certJSON{}, Problems: []string{}}
	for _, m := range st.Members {
		r.Health[m.ID] = health[m.ID].String()
	}
	if st.Leader.ID == "" {
		r.Problems = append(r.Problems, "no leader")
	}
	if cp, signer, err := clusterCheckpoint(ctx, c, st); err != nil {
		r.CheckpointError = err.Error()
		r.Problems = append(r.Problems, "no verifiable checkpoint")
	} else {
		r.Checkpoint = &checkpointJSON{Size: cp.Size, Root: rootWords(cp.Hash), KeyName: signer,
			Signer: strings.TrimPrefix(signer, ledger.KeyName(st.Cluster, ""))}
	}
	t := now()
	for _, cl := range certificates(st.Members, health, files) {
		j := certJSON{What: cl.what, Expired: cl.expired}
		if cl.err != nil {
			j.Error, j.Warning = cl.err.Error(), true
		} else if !cl.notAfter.IsZero() {
			na, left := cl.notAfter.UTC(), cl.notAfter.Sub(t)
			d := int(left.Hours() / 24)
			j.NotAfter, j.DaysLeft = &na, &d
			j.Expired = j.Expired || left <= 0
			j.Warning = j.Expired || left < certWarning
		} else {
			j.Warning = j.Expired
		}
		r.Certificates = append(r.Certificates, j)
	}
	r.Serving = len(r.Problems) == 0
	if err := printJSON(w, r); err != nil {
		return err
	}
	if !r.Serving {
		return fmt.Errorf("cluster %q is not serving: %s", st.Cluster, strings.Join(r.Problems, ", "))
	}
	return nil
}
