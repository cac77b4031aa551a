// Package agentcluster starts an in-memory two-node Custos cluster behind the
// real API for the backup packages' tests, with a KEK and an agent client.
// Tests only: it imports keysvc, which the backup packages themselves must not.
package agentcluster

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/officer"
)

type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// Env is a running cluster.
type Env struct {
	PKI     *httpapitest.PKI
	URLs    []string
	Cluster *keysvctest.Cluster
}

// Client returns a client for name with role from region DE.
func (e *Env) Client(tb testing.TB, role identity.Role, name string) *client.Client {
	tb.Helper()
	return e.ClientIn(tb, role, name, "DE")
}

// ClientIn returns a client for name with role from region.
func (e *Env) ClientIn(tb testing.TB, role identity.Role, name, region string) *client.Client {
	tb.Helper()
	cl, err := client.New(client.Config{Endpoints: e.URLs, TLSFiles: e.PKI.Issue(tb, role, name, region), Timeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// New starts two nodes (n1 in DE, n2 in FR), initialises two officers
// (quorum 2) and creates each of kekIDs by ceremony: threshold 2, wrap and
// unwrap for role agent from DE, context field "dataset" required.
func New(tb testing.TB, kekIDs ...string) *Env {
	tb.Helper()
	pki := httpapitest.NewPKI(tb, "test")
	ids := []string{"n1", "n2"}
	handlers, urls := map[string]*swapHandler{}, map[string]string{}
	for _, id := range ids {
		handlers[id] = &swapHandler{}
		urls[id] = pki.Serve(tb, id, keysvctest.Region(id), handlers[id]).URL
	}
	c := keysvctest.NewCluster(tb, 2, keysvctest.Options{
		NoForwarder: true,
		Configure:   func(cfg *keysvc.Config) { cfg.APIAdvertise = urls[cfg.NodeID] },
	})
	for _, id := range ids {
		n := c.Node(id)
		fwd := httpapi.NewForwarder(pki.ClientTLS(tb, pki.Issue(tb, identity.RoleNode, id, keysvctest.Region(id))))
		tb.Cleanup(fwd.Close)
		n.SetForwarder(fwd)
		handlers[id].set(httpapi.New(n, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	}
	leader := urls[c.Leader().Info().ID]
	e := &Env{PKI: pki, URLs: []string{leader, urls[c.Follower().Info().ID]}, Cluster: c}

	ctx := context.Background()
	signers := map[string]*officer.Signer{}
	var bundles []string
	for _, name := range []string{"alice", "bob"} {
		s, err := officer.Generate(officer.Config{Name: name})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		signers[name] = s
		bundles = append(bundles, string(s.Public().Marshal()))
	}
	ops := e.Client(tb, identity.RoleOperator, "ops")
	if err := ops.Init(ctx, client.InitRequest{Officers: bundles, Quorum: 2, DefaultThreshold: 2}); err != nil {
		tb.Fatal(err)
	}
	alice := e.Client(tb, identity.RoleOfficer, "alice")
	bob := e.Client(tb, identity.RoleOfficer, "bob")
	sign := func(name string, p ceremony.Proposal) string {
		sig, err := signers[name].Sign(p.Digest())
		if err != nil {
			tb.Fatal(err)
		}
		return string(sig.Marshal())
	}
	access := ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}
	for _, kekID := range kekIDs {
		st, err := ops.Cluster(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		params := ceremony.KEKCreate{KEKID: kekID, Policy: ceremony.Policy{Threshold: 2, ActivationTTL: time.Minute, Wrap: access, Unwrap: access, Context: []string{"dataset"}}}
		id, _ := ceremony.NewID(rand.Reader)
		now := time.Now()
		p := ceremony.Proposal{Cluster: "test", ID: id, Params: params, Proposer: "alice", Created: now, Expires: now.Add(time.Hour), StateVersion: st.StateVersion}
		b, _ := p.Marshal()
		if _, err := alice.Propose(ctx, client.ProposeRequest{Proposal: string(b), Signature: sign("alice", p)}); err != nil {
			tb.Fatal(err)
		}
		cer, err := bob.Approve(ctx, id, client.ApproveRequest{Officer: "bob", Signature: sign("bob", p)})
		if err != nil || cer.Status != keysvc.StatusExecuted {
			tb.Fatalf("kek.create %s: %+v, %v", kekID, cer, err)
		}
		c.WaitConverged()
	}
	return e
}
