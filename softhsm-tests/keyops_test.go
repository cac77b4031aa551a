package softhsmtests

// Key operations on a real cluster under failure: agents unwrap and wrap
// while the leader, then a serving follower, is killed -9. Clients that
// retry get service back; every answered operation has its committed log
// entry; with a quorum gone, nothing is answered at all.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// answered is one acknowledged key operation: its receipt and the blob it
// was about.
type answered struct {
	typ   string
	index uint64
	blob  []byte
}

type keyOpLoad struct {
	mu      sync.Mutex
	done    []answered
	lastOK  time.Time
	failed  int
	stop    chan struct{}
	wg      sync.WaitGroup
	dataKey []byte
}

func (l *keyOpLoad) record(a answered) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = append(l.done, a)
	l.lastOK = time.Now()
}

func (l *keyOpLoad) okSince(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastOK.After(t)
}

func startKeyOpLoad(t *testing.T, c *devcluster.Cluster, workers int, blob []byte) *keyOpLoad {
	l := &keyOpLoad{stop: make(chan struct{})}
	ctxFields := map[string]string{}
	for w := range workers {
		cl, err := c.Client(identity.RoleAgent)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var err error
				if (w+i)%4 == 0 {
					var r client.WrapResponse
					if r, err = cl.Wrap(ctx, devcluster.DemoKEK, []byte("a data key for the soak"), ctxFields); err == nil {
						l.record(answered{ledger.TypeWrap, r.LogIndex, r.Wrapped})
					}
				} else {
					var r client.UnwrapResponse
					if r, err = cl.Unwrap(ctx, devcluster.DemoKEK, blob, ctxFields); err == nil {
						if string(r.Plaintext) != "a data key for the soak" {
							t.Errorf("unwrap returned %q", r.Plaintext)
						}
						l.record(answered{ledger.TypeUnwrap, r.LogIndex, blob})
					}
				}
				cancel()
				if err != nil {
					l.mu.Lock()
					l.failed++
					l.mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *keyOpLoad) halt() []answered {
	close(l.stop)
	l.wg.Wait()
	return l.done
}

func TestKeyOpsSurviveKill9(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	ctx := bounded(t, 2*time.Minute)
	if err := c.InitOfficers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDemoKEK(ctx); err != nil {
		t.Fatal(err)
	}
	agent, err := c.Client(identity.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)
	var w client.WrapResponse
	poll(t, 30*time.Second, "a first wrap", func() error {
		w, err = agent.Wrap(bounded(t, 10*time.Second), devcluster.DemoKEK, []byte("a data key for the soak"), nil)
		return err
	})
	load := startKeyOpLoad(t, c, 6, w.Wrapped)
	waitOK := func(what string, since time.Time) time.Duration {
		poll(t, 60*time.Second, what, func() error {
			if !load.okSince(since) {
				return errors.New("no operation answered yet")
			}
			return nil
		})
		return time.Since(since)
	}
	waitOK("load running", time.Now())

	// Kill -9 the leader, then a follower (which agents were also using).
	op := operator(t, c)
	leader := leaderOf(t, op)
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("leader %s killed; key operations answered again after %v", leader, waitOK("service after the leader's death", killed).Round(time.Millisecond))
	if err := c.Start(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), leader); err != nil {
		t.Fatal(err)
	}
	newLeader := leaderOf(t, op)
	var follower string
	for _, n := range c.Nodes {
		if n.ID != newLeader {
			follower = n.ID
			break
		}
	}
	if err := c.Kill(follower); err != nil {
		t.Fatal(err)
	}
	killed = time.Now()
	t.Logf("follower %s killed; answered again after %v", follower, waitOK("service after a follower's death", killed).Round(time.Millisecond))
	if err := c.Start(follower); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMember(bounded(t, 60*time.Second), follower); err != nil {
		t.Fatal(err)
	}
	done := load.halt()
	t.Logf("%d operations answered, %d failed attempts (retried)", len(done), load.failed)

	// Every answered operation is in the log, as answered.
	st := waitStatus(t, op, func(client.Status) bool { return true })
	var max uint64
	for _, a := range done {
		max = maxOf([]uint64{max, a.index})
	}
	waitSize(t, c, max+1, st.Leader.ID)
	entries := allEntries(t, c, st.Leader.ID, max+1)
	for _, a := range done {
		e, err := ledger.ParseEntry(entries[a.index])
		sum := sha256.Sum256(a.blob)
		if err != nil || e.Type != a.typ || e.Outcome != ledger.OutcomeOK || e.KEKID != devcluster.DemoKEK ||
			e.Details["wrapped"] != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Fatalf("answered %s at %d, but the log holds %+v (%v)", a.typ, a.index, e, err)
		}
	}

	// Fail closed: with two of three nodes down, no unwrap is answered.
	var up string
	for i, n := range c.Nodes {
		if i < 2 {
			if err := c.Kill(n.ID); err != nil {
				t.Fatal(err)
			}
		} else {
			up = n.ID
		}
	}
	last, err := nodeClientAs(t, c, up, identity.RoleAgent).Unwrap(bounded(t, 20*time.Second), devcluster.DemoKEK, w.Wrapped, nil)
	if err == nil || last.Plaintext != nil {
		t.Fatalf("unwrap without a quorum answered: %v", err)
	}
	t.Logf("without a quorum: %v", err)
}

func nodeClientAs(t *testing.T, c *devcluster.Cluster, id string, role identity.Role) *client.Client {
	t.Helper()
	cl, err := c.NodeClient(id, role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
