package softhsmtests

// Multi-process cluster tests: real custosd processes, each with its own
// SoftHSM token, raft over mutual TLS on 127.0.0.1, bbolt with fsync.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testwait"
	"github.com/custos-eu/custos/keysvc/errcode"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

var (
	buildOnce sync.Once
	custosd   string
	buildErr  error
)

// custosdBinary builds cmd/custosd once per test binary, or returns
// $CUSTOS_TEST_CUSTOSD: another build to run the same tests against (a
// previous release, to measure what a change did).
func custosdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CUSTOS_TEST_CUSTOSD"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "custos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		custosd = filepath.Join(dir, "custosd")
		out, err := exec.Command("go", "build", "-o", custosd, "github.com/custos-eu/custos/cmd/custosd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build custosd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return custosd
}

// startCluster lays out and starts an n-node cluster in a temp dir; it is
// stopped (and its logs shown on failure) when the test ends.
func startCluster(t *testing.T, n int, tuning nodecfg.RaftTuning) *devcluster.Cluster {
	t.Helper()
	hsmtest := os.Getenv("CUSTOS_REQUIRE_SOFTHSM")
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if hsmtest != "" {
			t.Fatal("softhsm2-util not found and CUSTOS_REQUIRE_SOFTHSM is set")
		}
		t.Skip("softhsm2-util not installed")
	}
	c, err := devcluster.Create(devcluster.Options{Dir: t.TempDir(), Nodes: n, Custosd: custosdBinary(t), RaftTuning: tuning})
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
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Up(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
	return c
}

func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func operator(t *testing.T, c *devcluster.Cluster) *client.Client {
	t.Helper()
	cl, err := c.Client(identity.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func nodeClient(t *testing.T, c *devcluster.Cluster, id string) *client.Client {
	t.Helper()
	cl, err := c.NodeClient(id, identity.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// poll retries cond every 100 ms until it succeeds or d passes.
func poll(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	testwait.Until(t, d, what, cond)
}

func leaderOf(t *testing.T, cl *client.Client) string {
	t.Helper()
	var id string
	poll(t, 30*time.Second, "a leader", func() error {
		st, err := cl.Cluster(bounded(t, 5*time.Second))
		if err != nil {
			return err
		}
		if st.Leader.ID == "" {
			return errors.New("no leader yet")
		}
		id = st.Leader.ID
		return nil
	})
	return id
}

// allEntries reads node id's whole log.
func allEntries(t *testing.T, c *devcluster.Cluster, id string, size uint64) [][]byte {
	t.Helper()
	cl := nodeClient(t, c, id)
	var out [][]byte
	for uint64(len(out)) < size {
		page, err := cl.Entries(bounded(t, 10*time.Second), uint64(len(out)), 1000)
		if err != nil {
			t.Fatalf("%s entries from %d: %v", id, len(out), err)
		}
		if len(page) == 0 {
			t.Fatalf("%s: log ends at %d, want %d", id, len(out), size)
		}
		out = append(out, page...)
	}
	return out[:size]
}

// waitSize waits until every running node's log holds at least size entries.
func waitSize(t *testing.T, c *devcluster.Cluster, size uint64, ids ...string) {
	t.Helper()
	for _, id := range ids {
		cl := nodeClient(t, c, id)
		poll(t, 60*time.Second, id+" catching up", func() error {
			st, err := cl.Cluster(bounded(t, 5*time.Second))
			if err != nil {
				return err
			}
			if st.LogSize < size {
				return fmt.Errorf("log size %d < %d", st.LogSize, size)
			}
			return nil
		})
	}
}

// checkAgreement checks that the nodes hold byte-identical logs up to size,
// that every acknowledged index holds a canary entry, and that each is
// proven included under a checkpoint signed by the current leader.
func checkAgreement(t *testing.T, c *devcluster.Cluster, size uint64, acked []uint64, ids ...string) {
	t.Helper()
	ref := allEntries(t, c, ids[0], size)
	for _, id := range ids[1:] {
		got := allEntries(t, c, id, size)
		for i := range ref {
			if tlog.RecordHash(ref[i]) != tlog.RecordHash(got[i]) {
				t.Fatalf("entry %d differs between %s and %s", i, ids[0], id)
			}
		}
	}
	for _, i := range acked {
		e, err := ledger.ParseEntry(ref[i])
		if err != nil || e.Type != "sys.canary" || e.Outcome != ledger.OutcomeOK {
			t.Fatalf("acknowledged entry %d: %+v, %v", i, e, err)
		}
	}
	cl := operator(t, c)
	keys, err := cl.NodeKeys(bounded(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	note, err := cl.Checkpoint(bounded(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, "custos/"+c.Name, keys...)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	t.Logf("checkpoint size %d signed by %s", cp.Size, signer)
	for _, i := range acked {
		if i >= cp.Size {
			continue
		}
		for _, id := range ids {
			p, err := nodeClient(t, c, id).InclusionProof(bounded(t, 10*time.Second), i, cp.Size)
			if err != nil {
				t.Fatalf("%s inclusion proof %d@%d: %v", id, i, cp.Size, err)
			}
			if err := ledger.VerifyInclusion(cp, i, ref[i], p.Hashes); err != nil {
				t.Fatalf("%s: entry %d not proven in checkpoint %d: %v", id, i, cp.Size, err)
			}
		}
	}
}

// appenders run canary appends through the whole cluster until stopped,
// recording every acknowledged index.
type appenders struct {
	mu     sync.Mutex
	acked  []uint64
	failed int
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startAppenders(t *testing.T, c *devcluster.Cluster, n int) *appenders {
	a := &appenders{stop: make(chan struct{})}
	for range n {
		cl := operator(t, c)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for {
				select {
				case <-a.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				i, err := cl.Canary(ctx)
				cancel()
				a.mu.Lock()
				if err == nil {
					a.acked = append(a.acked, i)
				} else {
					a.failed++
				}
				a.mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return a
}

func (a *appenders) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func (a *appenders) waitFor(t *testing.T, n int) {
	t.Helper()
	poll(t, 60*time.Second, fmt.Sprintf("%d acknowledged appends", n), func() error {
		if got := a.count(); got < n {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

func (a *appenders) halt() []uint64 {
	close(a.stop)
	a.wg.Wait()
	return a.acked
}

func maxOf(xs []uint64) uint64 {
	var m uint64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func TestKillLeaderWhileAppending(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	cl := operator(t, c)
	old := leaderOf(t, cl)
	a := startAppenders(t, c, 4)
	a.waitFor(t, 30)

	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	before := a.count()
	var survivors []string
	for _, n := range c.Nodes {
		if n.ID != old {
			survivors = append(survivors, n.ID)
		}
	}
	// A new leader must take over and acknowledge appends again.
	poll(t, 30*time.Second, "a new leader acknowledging appends", func() error {
		if a.count() <= before+5 {
			return errors.New("no new acknowledgements yet")
		}
		return nil
	})
	t.Logf("appends acknowledged again %v after kill -9 of leader %s", time.Since(killed).Round(time.Millisecond), old)
	acked := a.halt()
	t.Logf("%d appends acknowledged, %d failed (outcome unknown or refused)", len(acked), a.failed)

	if nl := leaderOf(t, cl); nl == old {
		t.Fatalf("leader is still the killed node %s", old)
	}
	// Every acknowledged entry survives, identically, on every survivor; the
	// killed node, restarted from its data dir, catches up to the same log.
	if err := c.Start(old); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), old); err != nil {
		t.Fatal(err)
	}
	size := maxOf(acked) + 1
	all := append(survivors, old)
	waitSize(t, c, size, all...)
	checkAgreement(t, c, size, acked, all...)
}

func TestRestartNodeFromDataDir(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	cl := operator(t, c)
	if err := c.Stop("node-2", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var acked []uint64
	for range 20 {
		i, err := cl.Canary(bounded(t, 10*time.Second))
		if err != nil {
			t.Fatalf("append with node-2 down: %v", err)
		}
		acked = append(acked, i)
	}
	if err := c.Start("node-2"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), "node-2"); err != nil {
		t.Fatal(err)
	}
	size := maxOf(acked) + 1
	waitSize(t, c, size, "node-1", "node-2", "node-3")
	checkAgreement(t, c, size, acked, "node-1", "node-2", "node-3")
}

func TestFreshNodeCatchesUpFromSnapshot(t *testing.T) {
	tuning := nodecfg.RaftTuning{SnapshotThreshold: 32, TrailingLogs: 8}
	tuning.SnapshotInterval.Duration = 500 * time.Millisecond
	c := startCluster(t, 3, tuning)
	cl := operator(t, c)
	var acked []uint64
	for range 120 {
		i, err := cl.Canary(bounded(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, i)
	}
	leader := leaderOf(t, cl)
	poll(t, 30*time.Second, "a snapshot on the leader", func() error {
		st, err := nodeClient(t, c, leader).Cluster(bounded(t, 5*time.Second))
		if err != nil {
			return err
		}
		if st.Raft.LastSnapshotIndex == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	n, err := c.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(n.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), n.ID); err != nil {
		t.Fatal(err)
	}
	size := maxOf(acked) + 1
	waitSize(t, c, size, n.ID)
	st, err := nodeClient(t, c, n.ID).Cluster(bounded(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Raft.LastSnapshotIndex == 0 {
		t.Fatalf("%s caught up without installing a snapshot: %+v", n.ID, st.Raft)
	}
	checkAgreement(t, c, size, acked, "node-1", n.ID)
}

// A node whose certificate comes from another CA can neither use the API nor
// speak raft, and never becomes a member.
func TestNodeWithoutValidCertificateIsRefused(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	rogue, err := devcluster.Create(devcluster.Options{Dir: t.TempDir(), Nodes: 1, Custosd: custosdBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	// The rogue's node certificate names node-1 of cluster "dev", exactly like
	// one of ours, but another CA issued it (with a key the test holds: the
	// rogue's own node key is in its HSM).
	rogueCA, err := identity.LoadCA(filepath.Join(rogue.Dir, "ca", "ca.pem"), filepath.Join(rogue.Dir, "ca", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := rogueCA.Issue(identity.Identity{Cluster: "dev", Name: "node-1", Role: identity.RoleNode, Region: "FR"},
		identity.IssueOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	rogueNode := identity.TLSFiles{CA: c.ClientTLS(identity.RoleOperator).CA}
	cfg, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := identity.LoadCertPool(rogueNode.CA)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		for _, port := range []int{n.APIPort, n.RaftPort} {
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
				Certificates: []tls.Certificate{cfg}, RootCAs: pool, MinVersion: tls.VersionTLS13,
				CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}, NextProtos: []string{"custos-raft/1", "h2", "http/1.1"},
				ServerName: "127.0.0.1",
			})
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil {
				t.Fatalf("%s port %d accepted a certificate from another CA", n.ID, port)
			}
		}
	}
	// The rogue's own clients cannot call the API either.
	rc, err := client.New(client.Config{Endpoints: c.Endpoints(), TLSFiles: identity.TLSFiles{
		Cert: rogue.ClientTLS(identity.RoleOperator).Cert, Key: rogue.ClientTLS(identity.RoleOperator).Key,
		CA: rogue.ClientTLS(identity.RoleOperator).CA,
	}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Canary(bounded(t, 10*time.Second)); err == nil {
		t.Fatal("a client of another CA appended to the log")
	}
	st, err := operator(t, c).Cluster(bounded(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 {
		t.Fatalf("members: %+v", st.Members)
	}
}

// TestPauseLeaderWhileAppending: a leader stopped with SIGSTOP (alive, its
// connections open, silent) costs the followers an election, not their
// clients' deadline. Appends through the followers keep their 5 s client
// timeout: those in flight at the pause end with no_quorum (outcome
// unknown) or no_leader, never with the client's timeout, and new ones are
// acknowledged once another leader is elected. The paused node is resumed
// and catches up.
func TestPauseLeaderWhileAppending(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	old := leaderOf(t, operator(t, c))
	var followers []*client.Client
	for _, n := range c.Nodes {
		if n.ID != old {
			cl, err := c.NodeClient(n.ID, identity.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			followers = append(followers, cl)
		}
	}
	var (
		mu       sync.Mutex
		acked    int
		failures []error
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for i := range 4 {
		cl := followers[i%len(followers)]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := cl.Canary(ctx)
				cancel()
				mu.Lock()
				if err == nil {
					acked++
				} else {
					failures = append(failures, err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return acked }
	poll(t, 60*time.Second, "appends through the followers", func() error {
		if count() < 20 {
			return errors.New("not yet")
		}
		return nil
	})
	if err := c.Signal(old, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Signal(old, syscall.SIGCONT) })
	paused, before := time.Now(), count()
	poll(t, 30*time.Second, "the followers acknowledging appends again", func() error {
		if count() <= before+5 {
			return errors.New("no new acknowledgements yet")
		}
		return nil
	})
	t.Logf("appends through the followers acknowledged again %v after SIGSTOP of leader %s", time.Since(paused).Round(time.Millisecond), old)
	close(stop)
	wg.Wait()
	if err := c.Signal(old, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for _, err := range failures {
		var ae *client.APIError
		if !errors.As(err, &ae) || (ae.Code != errcode.NoQuorum && ae.Code != errcode.NoLeader) {
			t.Errorf("an append through a follower failed with %v, want no_quorum or no_leader (never the client's timeout)", err)
		}
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), old); err != nil {
		t.Fatal(err)
	}
}
