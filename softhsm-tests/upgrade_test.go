package softhsmtests

// A rolling upgrade from the previous release to this one: a 3-node
// cluster of the previous release's custosd (built from git), agents
// wrapping and unwrapping throughout, each node stopped and started again
// on the new binary, one at a time, followers first; then a rollback of
// one node and back, and a state.db of a later layout refused. See
// docs/upgrades.md.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestRollingUpgrade(t *testing.T) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("softhsm2-util not found and CUSTOS_REQUIRE_SOFTHSM is set")
		}
		t.Skip("softhsm2-util not installed")
	}
	oldBin, rev := previousCustosd(t)
	newBin := custosdBinary(t)
	cli := custosCLI(t)

	// The previous release's cluster, with a KEK made by ceremony.
	c := startClusterOf(t, oldBin)
	ctx := bounded(t, 2*time.Minute)
	if err := c.InitOfficers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDemoKEK(ctx); err != nil {
		t.Fatal(err)
	}
	op := operator(t, c)
	env := filepath.Join(c.Dir, "env")
	trust := filepath.Join(t.TempDir(), "trust.json")
	runCLI(t, cli, 0, "audit", "checkpoint", "--out", trust, "--env", env)

	// Blobs wrapped by the previous release, unwrapped again at the end.
	agent, err := c.Client(identity.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)
	var old []wrapped
	poll(t, 30*time.Second, "wraps on the previous release", func() error {
		for len(old) < 5 {
			key := randomKey(t)
			w, err := agent.Wrap(bounded(t, 10*time.Second), devcluster.DemoKEK, key, nil)
			if err != nil {
				return err
			}
			old = append(old, wrapped{key, w.Wrapped})
		}
		return nil
	})

	load := startUpgradeLoad(t, c, 3)
	load.waitGrowth(t, "load running on the previous release", 20)
	for _, n := range c.Nodes {
		load.waitNode(t, n.ID, 3)
	}

	// One node at a time, followers first, the leader last.
	leader := leaderOf(t, op)
	var order []string
	for _, n := range c.Nodes {
		if n.ID != leader {
			order = append(order, n.ID)
		}
	}
	order = append(order, leader)
	c.Custosd = newBin
	for _, id := range order {
		upgradeNode(t, c, op, load, id, "new release")
	}
	t.Logf("upgraded %s (%s, leader %s last) to this release", strings.Join(order, ", "), rev, leader)
	// This release, and only it, stamped each node's state with its layout
	// version on its first start there.
	for _, id := range order {
		b, err := os.ReadFile(c.LogPath(id))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "keysvc: recorded the data layout version"); n != 1 {
			t.Errorf("%s's log records the layout version %d times, want once (by the new binary's first start)", id, n)
		}
	}

	// Roll one node back to the previous release and forward again: the
	// layout is the same (version 1), so both binaries serve it.
	back := order[0]
	c.Custosd = oldBin
	upgradeNode(t, c, op, load, back, "rollback to the previous release")
	c.Custosd = newBin
	upgradeNode(t, c, op, load, back, "new release again")

	// A data directory of a later release (a newer layout version) is
	// refused at start, with both versions and what to do, and left as it
	// was; with its version back, the node starts.
	refuseNewerLayout(t, c, op, load, order[1])

	results := load.halt()
	load.check(t, results)

	// Every blob the previous release wrapped unwraps on every upgraded
	// node, to the same data key.
	for _, n := range c.Nodes {
		cl := nodeClientAs(t, c, n.ID, identity.RoleAgent)
		for i, w := range old {
			var r client.UnwrapResponse
			poll(t, 30*time.Second, fmt.Sprintf("old blob %d on %s", i, n.ID), func() (err error) {
				r, err = cl.Unwrap(bounded(t, 10*time.Second), devcluster.DemoKEK, w.blob, nil)
				return err
			})
			if !bytes.Equal(r.Plaintext, w.key) {
				t.Fatalf("old blob %d unwrapped on %s to another key", i, n.ID)
			}
		}
	}

	// The log verifies offline across the upgrade, against the checkpoint
	// pinned on the previous release.
	pack := filepath.Join(t.TempDir(), "pack.jsonl")
	runCLI(t, cli, 0, "audit", "export", "--out", pack, "--env", env)
	out := runCLI(t, cli, 0, "audit", "verify", pack, "--trust", trust)
	if !strings.Contains(out, "OK: "+pack+" verifies against "+trust) {
		t.Fatalf("audit verify:\n%s", out)
	}
	t.Logf("audit verify across the upgrade:\n%s", out)
	f, err := os.Open(pack)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := audit.Scan(f, func(e ledger.Entry) error {
		if e.Outcome != ledger.OutcomeOK {
			t.Logf("log entry %d: %s %s by %s on %s: %s", e.Index, e.Type, e.Outcome, e.Actor.Identity, e.Node, e.Reason)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// previousRelease is the commit of the previous release: the last commit of
// the round before this one. CUSTOS_PREVIOUS_RELEASE names another.
const previousRelease = "f119ad8"

var (
	prevOnce sync.Once
	prevBin  string
	prevErr  error
	prevSkip string
)

// previousCustosd builds the previous release's custosd from this
// repository's history, once per test binary. It skips when the history is
// not there (a shallow clone) unless CUSTOS_REQUIRE_UPGRADE is set.
func previousCustosd(t *testing.T) (bin, rev string) {
	t.Helper()
	rev = previousRelease
	if r := os.Getenv("CUSTOS_PREVIOUS_RELEASE"); r != "" {
		rev = r
	}
	prevOnce.Do(func() { prevBin, prevSkip, prevErr = buildRelease(rev) })
	if prevSkip != "" {
		if os.Getenv("CUSTOS_REQUIRE_UPGRADE") != "" {
			t.Fatalf("%s, and CUSTOS_REQUIRE_UPGRADE is set", prevSkip)
		}
		t.Skip(prevSkip + " (CUSTOS_REQUIRE_UPGRADE=1 makes this a failure)")
	}
	if prevErr != nil {
		t.Fatal(prevErr)
	}
	return prevBin, rev
}

// buildRelease extracts rev from git (git archive) and builds its custosd.
// skip says why the history is missing.
func buildRelease(rev string) (bin, skip string, err error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", "no git repository around the tests: cannot build the previous release", nil
	}
	root := strings.TrimSpace(string(out))
	if exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").Run() != nil {
		shallow, _ := exec.Command("git", "-C", root, "rev-parse", "--is-shallow-repository").Output()
		return "", fmt.Sprintf("commit %s of the previous release is not in this repository's history (shallow: %s)", rev, strings.TrimSpace(string(shallow))), nil
	}
	dir, err := os.MkdirTemp("", "custos-prev-")
	if err != nil {
		return "", "", err
	}
	tarball := filepath.Join(dir, "src.tar")
	if out, err := exec.Command("git", "-C", root, "archive", "--output", tarball, rev).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("git archive %s: %v\n%s", rev, err, out)
	}
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o700); err != nil {
		return "", "", err
	}
	if out, err := exec.Command("tar", "-x", "-f", tarball, "-C", src).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("tar: %v\n%s", err, out)
	}
	bin = filepath.Join(dir, "custosd-"+rev)
	build := exec.Command("go", "build", "-o", bin, "./cmd/custosd")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build custosd at %s: %v\n%s", rev, err, out)
	}
	return bin, "", nil
}

var (
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// custosCLI builds this release's cmd/custos once per test binary.
func custosCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "custos-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliBin = filepath.Join(dir, "custos")
		if out, err := exec.Command("go", "build", "-o", cliBin, "github.com/custos-eu/custos/cmd/custos").CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build custos: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliBin
}

// runCLI runs the custos CLI, bounded, and wants exit code want.
func runCLI(t *testing.T, bin string, want int, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(bounded(t, 2*time.Minute), bin, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("custos %s: %v", strings.Join(args, " "), err)
	}
	if code != want {
		t.Fatalf("custos %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	return string(out)
}

// startClusterOf starts a 3-node cluster of custosd binary bin, like
// startCluster.
func startClusterOf(t *testing.T, bin string) *devcluster.Cluster {
	t.Helper()
	// NoHealth: the previous release refuses a config with a [health] table.
	c, err := devcluster.Create(devcluster.Options{Dir: t.TempDir(), Nodes: 3, Custosd: bin, NoHealth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.StopAll(10 * time.Second)
		if t.Failed() {
			for _, n := range c.Nodes {
				b, _ := os.ReadFile(c.LogPath(n.ID))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("--- last lines of %s's log:\n%s", n.ID, strings.Join(lines[max(0, len(lines)-25):], "\n"))
				var odd []string
				for _, l := range lines {
					if strings.Contains(l, "panic") || strings.Contains(l, `"msg":"http:`) || strings.Contains(l, "custosd: ") || strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") {
						odd = append(odd, l)
					}
				}
				t.Logf("--- %s's warnings, errors and daemon lines:\n%s", n.ID, strings.Join(odd[max(0, len(odd)-60):], "\n"))
			}
		}
	})
	if err := c.Up(bounded(t, 90*time.Second), t.Logf); err != nil {
		t.Fatal(err)
	}
	return c
}

// upgradeNode stops node id (SIGTERM), checks that the agents' operations
// go on without it, starts c.Custosd on the same data directory and token,
// and waits until it is a ready member caught up with the leader's log.
func upgradeNode(t *testing.T, c *devcluster.Cluster, op *client.Client, load *upgradeLoad, id, what string) {
	t.Helper()
	st, err := op.Cluster(bounded(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	load.enterStep(step{node: id, addr: strings.TrimPrefix(c.Node(id).APIURL(), "https://"), leader: st.Leader.ID == id})
	start := time.Now()
	if err := c.Stop(id, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	load.waitGrowth(t, "key operations while "+id+" is down", 20)
	if err := c.Start(id); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 90*time.Second), id); err != nil {
		t.Fatal(err)
	}
	var size uint64
	poll(t, 30*time.Second, "the leader's log size", func() error {
		st, err := op.Cluster(bounded(t, 5*time.Second))
		if err == nil && st.Leader.ID == "" {
			err = errors.New("no leader")
		}
		size = st.LogSize
		return err
	})
	waitSize(t, c, size, id)
	load.leaveStep()
	// The restarted node serves key operations itself (its activation cache
	// is gone: it asks the others for their shares again).
	load.waitNode(t, id, 5)
	t.Logf("%s: %s in %v (stopped, served by the others, restarted, caught up to %d entries)", id, what, time.Since(start).Round(time.Millisecond), size)
}

// refuseNewerLayout stops node id, checks that this release stamped its
// state.db with layout version 1, makes it version 2 (as a later release
// would), and checks that custosd refuses to start on it; then puts 1
// back and starts the node again.
func refuseNewerLayout(t *testing.T, c *devcluster.Cluster, op *client.Client, load *upgradeLoad, id string) {
	t.Helper()
	st, err := op.Cluster(bounded(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	load.enterStep(step{node: id, addr: strings.TrimPrefix(c.Node(id).APIURL(), "https://"), leader: st.Leader.ID == id})
	if err := c.Stop(id, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(c.NodeDir(id), "data", "state.db")
	if v := layoutOf(t, db, nil); v != 1 {
		t.Fatalf("%s: this release left layout version %d in state.db, want 1", id, v)
	}
	layoutOf(t, db, []byte{0, 0, 0, 0, 0, 0, 0, 2})
	logBefore, _ := os.ReadFile(c.LogPath(id))
	if err := c.Start(id); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(bounded(t, 60*time.Second), id); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("%s started on a state.db of a later layout: %v", id, err)
	}
	logAll, _ := os.ReadFile(c.LogPath(id))
	msg := string(logAll[len(logBefore):])
	for _, want := range []string{"data layout version 2, written by a later release", "reads layout versions up to 1", "roll the node back to the newer binary"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("%s's log on a newer layout lacks %q:\n%s", id, want, msg)
		}
	}
	if v := layoutOf(t, db, nil); v != 2 {
		t.Fatalf("the refusal changed the layout version to %d", v)
	}
	layoutOf(t, db, []byte{0, 0, 0, 0, 0, 0, 0, 1})
	if err := c.Start(id); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 90*time.Second), id); err != nil {
		t.Fatal(err)
	}
	load.leaveStep()
	load.waitNode(t, id, 5)
	t.Logf("%s: refused a state.db of layout version 2; started again on version 1", id)
}

// layoutOf sets the layout version of the state database at path to set,
// if set is not nil, and returns the version it holds.
func layoutOf(t *testing.T, path string, set []byte) uint64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	if err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if set != nil {
			if err := meta.Put([]byte("layout_version"), set); err != nil {
				return err
			}
		}
		v = bytes.Clone(meta.Get([]byte("layout_version")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(v) != 8 {
		t.Fatalf("%s: layout version %x", path, v)
	}
	return binary.BigEndian.Uint64(v)
}

type wrapped struct{ key, blob []byte }

func randomKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// step is the node being upgraded.
type step struct {
	node   string
	addr   string // its API host:port
	leader bool   // it was the leader when it was stopped
}

// opResult is one key operation of the load.
type opResult struct {
	kind   string // "wrap" or "unwrap"
	agent  string // the node the agent is pinned to, or "" (the whole cluster)
	err    error
	steady bool // started and ended with every node up and caught up
	epochs [2]int64
	times  [2]time.Time
	step   step // the node being upgraded when it ended, else when it started, if any
}

// upgradeLoad is agents wrapping a fresh data key, then unwrapping it, in
// a loop: some with a client of the whole cluster (which fails over), and
// one pinned to each node (which waits for its node to come back).
// Operations are tagged with the step they ran in: epoch is even while
// every node is up, odd while one is being upgraded.
type upgradeLoad struct {
	perNode map[string]*atomic.Int64 // operations answered by each node's pinned agent
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	ok      atomic.Int64
	epoch   atomic.Int64
	mu      sync.Mutex
	step    step
	res     []opResult
	bad     []string // unwraps that answered another key
}

func startUpgradeLoad(t *testing.T, c *devcluster.Cluster, workers int) *upgradeLoad {
	l := &upgradeLoad{stop: make(chan struct{}), perNode: map[string]*atomic.Int64{}}
	t.Cleanup(func() { l.halt() }) // on a failure before the test halts it
	type agent struct {
		cl   *client.Client
		node string // "": the whole cluster
	}
	var agents []agent
	for range workers {
		cl, err := c.Client(identity.RoleAgent)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, agent{cl, ""})
	}
	for _, n := range c.Nodes {
		cl, err := c.NodeClient(n.ID, identity.RoleAgent)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, agent{cl, n.ID})
		l.perNode[n.ID] = new(atomic.Int64)
	}
	for _, a := range agents {
		cl, pinned := a.cl, a.node
		t.Cleanup(cl.Close)
		served := l.perNode[a.node]
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				key := randomKey(t)
				var w client.WrapResponse
				err := l.do("wrap", pinned, func(ctx context.Context) (err error) {
					w, err = cl.Wrap(ctx, devcluster.DemoKEK, key, nil)
					return err
				})
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if served != nil {
					served.Add(1)
				}
				// Unwrap until it is answered (or the load stops): a
				// retryable failure is retried, as an agent would.
				for {
					var r client.UnwrapResponse
					err = l.do("unwrap", pinned, func(ctx context.Context) (err error) {
						r, err = cl.Unwrap(ctx, devcluster.DemoKEK, w.Wrapped, nil)
						return err
					})
					if err == nil {
						if served != nil {
							served.Add(1)
						}
						if !bytes.Equal(r.Plaintext, key) {
							l.mu.Lock()
							l.bad = append(l.bad, fmt.Sprintf("log index %d", r.LogIndex))
							l.mu.Unlock()
						}
						break
					}
					select {
					case <-l.stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		})
	}
	return l
}

// do runs one operation and records it.
func (l *upgradeLoad) do(kind, agent string, fn func(context.Context) error) error {
	e0, t0 := l.epoch.Load(), time.Now()
	l.mu.Lock()
	step := l.step
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	err := fn(ctx)
	cancel()
	e1 := l.epoch.Load()
	r := opResult{kind: kind, agent: agent, err: err, step: step, steady: e0%2 == 0 && e1 == e0,
		epochs: [2]int64{e0, e1}, times: [2]time.Time{t0, time.Now()}}
	if err == nil {
		l.ok.Add(1)
	}
	l.mu.Lock()
	if l.step.node != "" {
		// Started before a step or during one, ended during one: it was in
		// flight when the node was stopped, or started while it was down.
		r.step = l.step
	}
	l.res = append(l.res, r)
	l.mu.Unlock()
	return err
}

func (l *upgradeLoad) enterStep(s step) {
	l.mu.Lock()
	l.step = s
	l.mu.Unlock()
	l.epoch.Add(1)
}

func (l *upgradeLoad) leaveStep() {
	l.epoch.Add(1)
	l.mu.Lock()
	l.step = step{}
	l.mu.Unlock()
}

// waitGrowth waits until n more operations than now have succeeded.
func (l *upgradeLoad) waitGrowth(t *testing.T, what string, n int64) {
	t.Helper()
	from := l.ok.Load()
	poll(t, 60*time.Second, what, func() error {
		if got := l.ok.Load() - from; got < n {
			return fmt.Errorf("%d of %d operations answered", got, n)
		}
		return nil
	})
}

// waitNode waits until node id's pinned agent has had n more operations
// answered than now.
func (l *upgradeLoad) waitNode(t *testing.T, id string, n int64) {
	t.Helper()
	served := l.perNode[id]
	from := served.Load()
	poll(t, 60*time.Second, "key operations served by "+id, func() error {
		if got := served.Load() - from; got < n {
			return fmt.Errorf("%d of %d operations answered", got, n)
		}
		return nil
	})
}

func (l *upgradeLoad) halt() []opResult {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// retryable reports whether err is one an agent may retry, as the SDK
// documents: the request did not reach a node or its connection broke
// (transport), or a node answered 503 (shutting down, no leader, outcome
// unknown, not caught up, shares unavailable) or 429.
func retryable(err error) (why string, ok bool) {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%d %s from %s", ae.Status, ae.Code, ae.Endpoint),
			ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout", true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "EOF", "broken pipe", "server closed", "use of closed network connection"} {
		if strings.Contains(msg, s) {
			return "transport: " + s, true
		}
	}
	return msg, false
}

// check: every operation succeeded or failed retryably; none failed while
// every node was up; a failure was either an exchange with the node being
// upgraded, or a 503 from another node while the stopped node was the
// leader (an election); every unwrap answered the key that was wrapped.
func (l *upgradeLoad) check(t *testing.T, res []opResult) {
	t.Helper()
	count := map[string]int{}
	var ok, failed int
	for _, r := range res {
		if r.err == nil {
			ok++
			continue
		}
		failed++
		why, retry := retryable(r.err)
		if !retry {
			t.Errorf("%s failed with an error an agent cannot retry (upgrading %q): %v", r.kind, r.step.node, r.err)
		}
		if r.steady || r.step.node == "" { // an op ending in a step has its node
			t.Errorf("%s (agent %q) failed while every node was up and caught up (epochs %v, %s to %s): %v", r.kind, r.agent, r.epochs,
				r.times[0].UTC().Format("15:04:05.000"), r.times[1].UTC().Format("15:04:05.000"), r.err)
		}
		var ae *client.APIError
		atStepped := strings.Contains(r.err.Error(), r.step.addr)
		election := r.step.leader && errors.As(r.err, &ae) && ae.Status == http.StatusServiceUnavailable
		if r.step.node != "" && !atStepped && !election {
			t.Errorf("%s failed at a node that stayed up, while %s (leader: %v) was upgraded: %v", r.kind, r.step.node, r.step.leader, r.err)
		}
		agent := "cluster client"
		if r.agent != "" {
			agent = "agent pinned to " + r.agent
		}
		where := "another node"
		if atStepped {
			where = "the stopped node"
		}
		leader := ""
		if r.step.leader {
			leader = " (the leader)"
		}
		count[fmt.Sprintf("%s, %s, while upgrading %s%s, at %s: %s", r.kind, agent, r.step.node, leader, where, why)]++
	}
	if len(l.bad) > 0 {
		t.Errorf("unwraps answered another data key than the one wrapped: %v", l.bad)
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %d × %s", count[k], k)
	}
	t.Logf("%d key operations answered, %d failed retryably (each retried until answered):%s", ok, failed, b.String())
	if ok == 0 {
		t.Fatal("no key operation answered")
	}
}
