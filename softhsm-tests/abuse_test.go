package softhsmtests

// Abuse on a real cluster: a certificate with role officer but no officer
// record floods approvals, and an identity the KEK policy refuses floods
// unwraps. The refusals are decided without raft writes or folded, the
// flood ends in 429s, and each node's disk grows by a small bound.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// diskUse is the bytes of disk blocks under dir.
func diskUse(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// floodBound is the disk growth a node may show after the flood: the few
// entries that record it, the raft log's and state database's pages, a
// snapshot's worth of slack. The review measured +162 MiB per node for
// 1,941 refused approvals before approvals were screened.
const floodBound = 8 << 20

func TestFloodOfRefusalsIsBounded(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	ctx := bounded(t, 3*time.Minute)
	if err := c.InitOfficers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDemoKEK(ctx); err != nil {
		t.Fatal(err)
	}
	agent := operatorLike(t, c, identity.RoleAgent, "dev-agent", "")
	var blob []byte
	poll(t, 30*time.Second, "a first wrap", func() error {
		w, err := agent.Wrap(bounded(t, 10*time.Second), devcluster.DemoKEK, []byte("a data key for the flood"), nil)
		blob = w.Wrapped
		return err
	})
	// mallory: role officer, no officer record. eve: an auditor, whom the
	// demo KEK's policy does not let unwrap.
	mallory := operatorLike(t, c, identity.RoleOfficer, "mallory", "issue")
	eve := operatorLike(t, c, identity.RoleAuditor, "eve", "issue")

	type nodeFigures struct {
		logSize, raftIndex uint64
		disk               int64
	}
	measure := func() map[string]nodeFigures {
		out := map[string]nodeFigures{}
		for _, n := range c.Nodes {
			st, err := nodeClient(t, c, n.ID).Cluster(bounded(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			out[n.ID] = nodeFigures{st.LogSize, st.Raft.LastLogIndex, diskUse(t, c.NodeDir(n.ID))}
		}
		return out
	}
	before := measure()

	sig := strings.Repeat("A", 12<<10) // under the signature size limit, over any real signature
	var mu sync.Mutex
	codes := map[string]map[string]int{"approve": {}, "unwrap": {}}
	count := func(kind string, err error) {
		code := "ok"
		var ae *client.APIError
		if errors.As(err, &ae) {
			code = ae.Code
		} else if err != nil {
			code = "transport"
		}
		mu.Lock()
		codes[kind][code]++
		mu.Unlock()
	}
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				var id [16]byte
				rand.Read(id[:])
				_, err := mallory.Approve(bounded(t, 10*time.Second), hex.EncodeToString(id[:]), client.ApproveRequest{Officer: "mallory", Signature: sig})
				count("approve", err)
			}
		})
		wg.Go(func() {
			for time.Now().Before(stop) {
				_, err := eve.Unwrap(bounded(t, 10*time.Second), devcluster.DemoKEK, blob, nil)
				count("unwrap", err)
			}
		})
	}
	wg.Wait()
	t.Logf("flood answers: %v", codes)
	for kind, by := range codes {
		if by[errcode.RateLimited] == 0 {
			t.Errorf("%s flood never answered 429 rate_limited: %v", kind, by)
		}
		if by["ok"] > 0 || by[errcode.Internal] > 0 || by["transport"] > 0 {
			t.Errorf("%s flood: %v", kind, by)
		}
	}
	// Let the followers apply what the leader has, then compare.
	leaderSize := uint64(0)
	for _, f := range measure() {
		leaderSize = max(leaderSize, f.logSize)
	}
	waitSize(t, c, leaderSize, c.Nodes[0].ID, c.Nodes[1].ID, c.Nodes[2].ID)
	after := measure()
	if testing.Verbose() {
		id := c.Nodes[0].ID
		for i, b := range allEntries(t, c, id, after[id].logSize)[before[id].logSize:] {
			t.Logf("entry %d: %.300s", before[id].logSize+uint64(i), b)
		}
	}
	for _, n := range c.Nodes {
		b, a := before[n.ID], after[n.ID]
		refused := 0
		for _, by := range codes {
			for code, k := range by {
				if code != errcode.RateLimited {
					refused += k
				}
			}
		}
		t.Logf("%s: %d refusals answered; log +%d entries, raft +%d indexes, disk +%d KiB", n.ID, refused,
			a.logSize-b.logSize, a.raftIndex-b.raftIndex, (a.disk-b.disk)>>10)
		// Every refusal the nodes answered is in the log, folded: at most
		// one entry per kind, node and identity opened the window, and
		// screened approvals took no raft command of their own.
		if grew := a.logSize - b.logSize; grew > 6 {
			t.Errorf("%s: the log grew by %d entries for a flood of refusals, want at most 6", n.ID, grew)
		}
		if grew := a.disk - b.disk; grew > floodBound {
			t.Errorf("%s: disk grew by %d KiB, want at most %d KiB", n.ID, grew>>10, floodBound>>10)
		}
	}
}

// operatorLike returns a client of role named name that sees 429s instead
// of waiting them out: the cluster's own client certificate for role, or,
// with issue set, one the dev CA issues now.
func operatorLike(t *testing.T, c *devcluster.Cluster, role identity.Role, name, issue string) *client.Client {
	t.Helper()
	files := c.ClientTLS(role)
	if issue != "" {
		ca, err := identity.LoadCA(filepath.Join(c.Dir, "ca", "ca.pem"), filepath.Join(c.Dir, "ca", "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := ca.Issue(identity.Identity{Cluster: c.Name, Name: name, Role: role, Region: devcluster.Regions[0]}, identity.IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		files = identity.TLSFiles{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+".key"), CA: files.CA}
		if err := identity.WriteKeyPair(files.Cert, files.Key, certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := client.New(client.Config{Endpoints: c.Endpoints(), TLSFiles: files, Timeout: 10 * time.Second, MaxRateLimitWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
