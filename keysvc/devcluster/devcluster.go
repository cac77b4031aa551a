// Package devcluster runs a local Custos cluster for development, demos and
// integration tests: a dev CA, one SoftHSM token per node, node certificates and
// configs, and custosd processes on 127.0.0.1. `custos dev up` and the
// integration tests in softhsm-tests both use it.
//
// Everything lives under one directory:
//
//	DIR/cluster.json            what was created: nodes, ports, health_addr
//	                            (plain-HTTP /livez, /readyz), pids
//	DIR/ca/ca.pem, ca.key       the dev cluster CA (key 0600)
//	DIR/node-N/node.toml        node config; cert.pem (its key is in the node's
//	                            token: custosd -csr, signed by the CA); data/;
//	                            custosd.log
//	DIR/node-N/softhsm/         the node's own SoftHSM: config, token, PIN file (0600)
//	DIR/clients/ROLE.pem, .key  client certificates: operator, agent, auditor
//	DIR/env                     shell exports for the custos CLI
//	DIR/officers/               demo officers alice, bob, carol: keys, client
//	                            certificates, NAME.env (see OfficersDir)
//
// InitOfficers (run by `custos dev up`) names the demo officers at
// cluster init, with quorum 2.
//
// It is for development only: the CA key and PINs sit on local disk.
package devcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/custos-eu/custos/hsm/softhsm"
	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// Regions assigned to nodes in order: each node sits in a distinct EU state.
var Regions = []string{"FR", "DE", "NL", "BE", "AT", "IE", "FI", "SE", "ES", "IT"}

// ClientRoles are the roles `Create` issues client certificates for.
var ClientRoles = []identity.Role{identity.RoleOperator, identity.RoleAgent, identity.RoleAuditor}

// Node is one node of a dev cluster.
type Node struct {
	ID       string `json:"id"`
	Region   string `json:"region"`
	APIPort  int    `json:"api_port"`
	RaftPort int    `json:"raft_port"`
	// HealthAddr is the node's health listener for load balancers
	// ([health] addr): plain HTTP GET /livez and /readyz.
	HealthAddr string `json:"health_addr,omitempty"`
	PID        int    `json:"pid,omitempty"`
}

// APIURL is the node's API base URL.
func (n *Node) APIURL() string { return "https://127.0.0.1:" + strconv.Itoa(n.APIPort) }

// Cluster is a dev cluster on disk.
type Cluster struct {
	Dir     string  `json:"-"`
	Name    string  `json:"name"`
	Custosd string  `json:"custosd"` // path of the custosd binary
	Nodes   []*Node `json:"nodes"`
	// RaftTuning goes into every node's config.
	RaftTuning nodecfg.RaftTuning `json:"raft_tuning"`
	// NoHealth leaves out the nodes' health listeners (for a custosd of a
	// release before [health]).
	NoHealth bool `json:"no_health,omitempty"`
}

// Options configure Create.
type Options struct {
	Dir     string // created; must not hold a cluster already
	Nodes   int    // default 3
	Name    string // cluster name, default "dev"
	Custosd string // custosd binary; default: next to this executable, then $PATH
	// RaftTuning goes into every node's config (tests lower snapshot bounds).
	RaftTuning nodecfg.RaftTuning
	// NoHealth: no [health] listener in the nodes' configs, for a custosd
	// of a release that does not know the table (the upgrade test's).
	NoHealth bool
}

// Create lays out a new cluster: CA, client certificates, and Nodes nodes
// (tokens, certificates, configs). It starts nothing.
func Create(o Options) (*Cluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > len(Regions) {
		return nil, fmt.Errorf("devcluster: %d nodes: want 1 to %d", o.Nodes, len(Regions))
	}
	if o.Name == "" {
		o.Name = "dev"
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster.json")); err == nil {
		return nil, fmt.Errorf("devcluster: %s already holds a cluster; run `custos dev down --dir %s` and remove it first", dir, dir)
	}
	bin, err := findCustosd(o.Custosd)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Name: o.Name, Custosd: bin, RaftTuning: o.RaftTuning, NoHealth: o.NoHealth}
	for _, d := range []string{"ca", "clients"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	ca, err := identity.NewCA(o.Name, 0)
	if err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(c.caFile(), filepath.Join(dir, "ca", "ca.key")); err != nil {
		return nil, err
	}
	for _, role := range ClientRoles {
		id := identity.Identity{Cluster: o.Name, Name: "dev-" + string(role), Role: role, Region: Regions[0]}
		certPEM, keyPEM, err := ca.Issue(id, identity.IssueOptions{})
		if err != nil {
			return nil, err
		}
		f := c.ClientTLS(role)
		if err := identity.WriteKeyPair(f.Cert, f.Key, certPEM, keyPEM); err != nil {
			return nil, err
		}
	}
	if err := c.createOfficers(ca); err != nil {
		return nil, err
	}
	for range o.Nodes {
		if _, err := c.addNode(ca); err != nil {
			return nil, err
		}
	}
	if err := c.WriteEnv(); err != nil {
		return nil, err
	}
	return c, c.save()
}

// Load opens a cluster Create laid out in dir.
func Load(dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		return nil, fmt.Errorf("devcluster: no cluster in %s (run `custos dev up --dir %s`): %w", dir, dir, err)
	}
	c := &Cluster{Dir: dir}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("devcluster: %s/cluster.json: %w", dir, err)
	}
	return c, nil
}

func (c *Cluster) caFile() string { return filepath.Join(c.Dir, "ca", "ca.pem") }

// NodeDir is where node id keeps its config, certificate, data and log.
func (c *Cluster) NodeDir(id string) string { return filepath.Join(c.Dir, id) }

// ConfigPath is node id's custosd config file.
func (c *Cluster) ConfigPath(id string) string { return filepath.Join(c.NodeDir(id), "node.toml") }

// LogPath is node id's custosd log (stdout and stderr).
func (c *Cluster) LogPath(id string) string { return filepath.Join(c.NodeDir(id), "custosd.log") }

// ClientTLS names the client certificate files for a role.
func (c *Cluster) ClientTLS(role identity.Role) identity.TLSFiles {
	base := filepath.Join(c.Dir, "clients", string(role))
	return identity.TLSFiles{Cert: base + ".pem", Key: base + ".key", CA: c.caFile()}
}

// Endpoints are the API base URLs of every node.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.APIURL())
	}
	return out
}

// Node returns the node with that id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// AddNode lays out one more node that joins the existing ones when started.
func (c *Cluster) AddNode() (*Node, error) {
	ca, err := identity.LoadCA(c.caFile(), filepath.Join(c.Dir, "ca", "ca.key"))
	if err != nil {
		return nil, err
	}
	n, err := c.addNode(ca)
	if err != nil {
		return nil, err
	}
	return n, c.save()
}

func (c *Cluster) addNode(ca *identity.CA) (*Node, error) {
	if len(c.Nodes) >= len(Regions) {
		return nil, fmt.Errorf("devcluster: at most %d nodes", len(Regions))
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	n := &Node{ID: fmt.Sprintf("node-%d", len(c.Nodes)+1), Region: Regions[len(c.Nodes)], APIPort: ports[0], RaftPort: ports[1]}
	if !c.NoHealth {
		n.HealthAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	}
	dir := c.NodeDir(n.ID)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	// Each node has its own token directory, as each node has its own HSM:
	// a SoftHSM process reads every token in its directory, so a shared one
	// lets one node's key writes disturb another's token opening.
	env, err := softhsm.Setup(filepath.Join(dir, "softhsm"))
	if err != nil {
		return nil, err
	}
	tok, err := env.InitToken(n.ID)
	if err != nil {
		return nil, err
	}
	cfg := nodecfg.Config{
		NodeID: n.ID, Region: n.Region, Cluster: c.Name, DataDir: filepath.Join(dir, "data"),
		API:  nodecfg.APIListener{Listen: fmt.Sprintf("127.0.0.1:%d", n.APIPort), MaxConnsPerIP: devMaxConnsPerIP},
		Raft: nodecfg.RaftListener{Listen: fmt.Sprintf("127.0.0.1:%d", n.RaftPort), MaxHandshakesPerIP: devMaxHandshakesPerIP},
		HSM: nodecfg.HSM{Module: tok.Module, TokenLabel: tok.TokenLabel, PINFile: tok.PINFile,
			SoftHSMConf: env.ConfPath},
		TLS:        nodecfg.TLS{Cert: filepath.Join(dir, "cert.pem"), CA: c.caFile()},
		Log:        nodecfg.Log{Level: "info", Format: "json"},
		RaftTuning: c.RaftTuning,
		Health:     nodecfg.Health{Addr: n.HealthAddr},
	}
	if len(c.Nodes) == 0 {
		cfg.Bootstrap = true
		cfg.AllowedRegions = identity.EUEEARegions()
	} else {
		cfg.Join = c.Endpoints()
	}
	if err := cfg.Write(c.ConfigPath(n.ID)); err != nil {
		return nil, err
	}
	if err := c.certify(ca, n.ID, cfg.TLS.Cert); err != nil {
		return nil, err
	}
	c.Nodes = append(c.Nodes, n)
	return n, nil
}

// csrTimeout bounds `custosd -csr`: opening a token and making one key.
const csrTimeout = time.Minute

// Per-address caps of a dev cluster's listeners. Every node and every client
// of a dev cluster is 127.0.0.1, so the production defaults (512 API
// connections, 4 raft handshakes per address) would count them all as one:
// custos dev bench goes up to 4096 concurrent clients, and every other node
// dials each node's raft listener from the same address. 64 is the raft
// listener's own bound on handshakes in progress.
const (
	devMaxConnsPerIP      = 8192
	devMaxHandshakesPerIP = 64
)

// certify gets node id its certificate as an operator would: the node makes
// its TLS key in its own HSM and a certificate request (`custosd -config F
// -csr`), the CA issues from the request, and only the certificate is
// written. No node private key is ever a file.
func (c *Cluster) certify(ca *identity.CA, id, certFile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), csrTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Custosd, "-config", c.ConfigPath(id), "-csr")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("devcluster: %s -config %s -csr: %w\n%s", c.Custosd, c.ConfigPath(id), err, stderr.Bytes())
	}
	certPEM, err := ca.IssueCSR(stdout.Bytes(), identity.IssueOptions{})
	if err != nil {
		return fmt.Errorf("devcluster: certificate of %s: %w", id, err)
	}
	if err := atomicfile.WriteNew(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("devcluster: certificate of %s: %w", id, err)
	}
	return nil
}

// save records the cluster in DIR/cluster.json.
func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, "cluster.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, "cluster.json"))
}

// WriteEnv writes DIR/env: shell exports that point the custos CLI at the
// cluster with the agent's client certificate (the role most commands use);
// CUSTOS_OPERATOR_* and CUSTOS_AUDITOR_* name the other roles' files.
func (c *Cluster) WriteEnv() error {
	var b strings.Builder
	exp := func(k, v string) { fmt.Fprintf(&b, "export %s=%q\n", k, v) }
	exp("CUSTOS_ADDR", strings.Join(c.Endpoints(), ","))
	exp("CUSTOS_CA", c.caFile())
	agent := c.ClientTLS(identity.RoleAgent)
	exp("CUSTOS_CLIENT_CERT", agent.Cert)
	exp("CUSTOS_CLIENT_KEY", agent.Key)
	for _, role := range []identity.Role{identity.RoleOperator, identity.RoleAuditor} {
		f := c.ClientTLS(role)
		up := strings.ToUpper(string(role))
		exp("CUSTOS_"+up+"_CERT", f.Cert)
		exp("CUSTOS_"+up+"_KEY", f.Key)
	}
	for _, name := range DemoOfficers {
		f := c.OfficerTLS(name)
		up := strings.ToUpper(name)
		exp("CUSTOS_OFFICER_"+up+"_CERT", f.Cert)
		exp("CUSTOS_OFFICER_"+up+"_KEY", f.Key)
	}
	if err := c.writeOfficerEnvs(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, "env"), []byte(b.String()), 0o600)
}

// Start starts node id's custosd in its own session (it outlives this process)
// and records its pid. It does not wait for the node to be ready.
func (c *Cluster) Start(id string) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("devcluster: no node %q", id)
	}
	if n.PID != 0 && alive(n.PID) {
		return fmt.Errorf("devcluster: %s already running as pid %d", id, n.PID)
	}
	logf, err := os.OpenFile(c.LogPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(c.Custosd, "-config", c.ConfigPath(id))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("devcluster: start %s: %w", id, err)
	}
	n.PID = cmd.Process.Pid
	go cmd.Wait() // reap it if it exits while we run
	return c.save()
}

// Signal sends sig to node id's custosd (syscall.SIGKILL for a crash).
func (c *Cluster) Signal(id string, sig syscall.Signal) error {
	n := c.Node(id)
	if n == nil || n.PID == 0 {
		return fmt.Errorf("devcluster: %s is not running", id)
	}
	return syscall.Kill(n.PID, sig)
}

// Stop asks node id to shut down (SIGTERM), waits up to timeout, then kills it.
func (c *Cluster) Stop(id string, timeout time.Duration) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("devcluster: no node %q", id)
	}
	if n.PID == 0 || !alive(n.PID) {
		n.PID = 0
		return c.save()
	}
	_ = syscall.Kill(n.PID, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for alive(n.PID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(n.PID) {
		_ = syscall.Kill(n.PID, syscall.SIGKILL)
		for i := 0; alive(n.PID) && i < 100; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	n.PID = 0
	return c.save()
}

// Kill crashes node id (SIGKILL) and waits until the process is gone.
func (c *Cluster) Kill(id string) error {
	if err := c.Signal(id, syscall.SIGKILL); err != nil {
		return err
	}
	n := c.Node(id)
	for i := 0; alive(n.PID) && i < 250; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(n.PID) {
		return fmt.Errorf("devcluster: %s (pid %d) survived SIGKILL", id, n.PID)
	}
	n.PID = 0
	return c.save()
}

// StopAll stops every node.
func (c *Cluster) StopAll(timeout time.Duration) error {
	var errs []error
	for _, n := range slices.Backward(c.Nodes) {
		errs = append(errs, c.Stop(n.ID, timeout))
	}
	return errors.Join(errs...)
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// freePorts picks n distinct loopback ports that are free now. They come from
// below Linux's default ephemeral range (32768-60999), so that outgoing
// connections, which take ephemeral ports, cannot grab one before the node
// binds it.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("devcluster: no free loopback port found in 20000-32767")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12768)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func findCustosd(path string) (string, error) {
	if path != "" {
		return filepath.Abs(path)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "custosd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("custosd"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("devcluster: custosd binary not found next to custos or on $PATH (run `make build`, or pass --custosd)")
}
