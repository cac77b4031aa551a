// Package agentcluster starts in-memory Custos clusters behind the real API
// over mutual TLS, for the tests of the API and of the backup packages:
// Serve (the nodes and their APIs), Officers (initialised officers who run
// ceremonies) and New (both, with KEKs and agent clients).
// Tests only: it imports keysvc, which the backup packages themselves must not.
package agentcluster

import (
	"context"
	"fmt"
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
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
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

// ServeOptions configures Serve.
type ServeOptions struct {
	// Nodes is how many nodes (n1, n2, …); 2 if 0.
	Nodes int
	// Forward routes the nodes' forwarding (appends, share release) over
	// their own peer channel (keysvc/peer on the in-memory raft network),
	// as custosd does over TCP, instead of keysvctest's in-process forwarder.
	Forward bool
	// Logger returns node id's API logger; nil discards.
	Logger func(id string) *slog.Logger
	// RateLimits are the APIs' (httpapi.Options.RateLimits): a test that
	// sends many refused requests on purpose lifts the refusal limit.
	RateLimits httpapi.RateLimits
}

// Served is a cluster of keysvc nodes (in-memory raft, keysvctest regions),
// each behind its own API over mutual TLS.
type Served struct {
	PKI     *httpapitest.PKI
	Cluster *keysvctest.Cluster
	URL     map[string]string // node id -> API base URL
}

// Serve starts the nodes and their APIs.
func Serve(tb testing.TB, o ServeOptions) *Served {
	tb.Helper()
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	s := &Served{PKI: httpapitest.NewPKI(tb, "test"), URL: map[string]string{}}
	handlers := map[string]*swapHandler{}
	for i := 1; i <= o.Nodes; i++ {
		id := fmt.Sprintf("n%d", i)
		handlers[id] = &swapHandler{}
		s.URL[id] = s.PKI.Serve(tb, id, keysvctest.Region(id), handlers[id]).URL
	}
	s.Cluster = keysvctest.NewCluster(tb, o.Nodes, keysvctest.Options{
		PeerChannel: o.Forward,
		Configure: func(cfg *keysvc.Config) {
			cfg.APIAdvertise = s.URL[cfg.NodeID]
			cfg.CAs = s.PKI.Pool() // the CA of the clients' certificates
		},
	})
	for id, h := range handlers {
		n := s.Cluster.Node(id)
		log := slog.New(slog.DiscardHandler)
		if o.Logger != nil {
			log = o.Logger(id)
		}
		h.set(httpapi.New(n, httpapi.Options{Logger: log, RateLimits: o.RateLimits}))
	}
	return s
}

// LeaderURL is the API of the current leader.
func (s *Served) LeaderURL() string { return s.URL[s.Cluster.Leader().Info().ID] }

// FollowerURL is the API of a follower.
func (s *Served) FollowerURL() string { return s.URL[s.Cluster.Follower().Info().ID] }

// Officers are officers alice and bob, initialised (quorum 2, default
// threshold 2), who run ceremonies through the API.
type Officers struct {
	Keys       *officertest.Set
	ops        *client.Client
	alice, bob *client.Client
	converged  func()
}

// InitOfficers makes officers alice and bob and initialises the cluster
// with them; sdk returns a client for a role and name.
func (s *Served) InitOfficers(tb testing.TB, sdk func(role identity.Role, name string) *client.Client) *Officers {
	tb.Helper()
	o := &Officers{Keys: officertest.New(tb), converged: s.Cluster.WaitConverged}
	o.ops = sdk(identity.RoleOperator, "ops")
	if err := o.ops.Init(context.Background(), client.InitRequest{Officers: o.Keys.Bundles("alice", "bob"), Quorum: 2, DefaultThreshold: 2}); err != nil {
		tb.Fatal(err)
	}
	o.alice, o.bob = sdk(identity.RoleOfficer, "alice"), sdk(identity.RoleOfficer, "bob")
	return o
}

// Execute runs a ceremony with params to execution (alice proposes, bob
// approves), waits for the nodes to converge and returns its id.
func (o *Officers) Execute(tb testing.TB, params ceremony.Params) string {
	tb.Helper()
	ctx := context.Background()
	st, err := o.ops.Cluster(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	p := officertest.Proposal(tb, "test", "alice", params, time.Now(), st.StateVersion)
	b, _ := p.Marshal()
	if _, err := o.alice.Propose(ctx, client.ProposeRequest{Proposal: string(b), Signature: string(o.Keys.Sign("alice", p))}); err != nil {
		tb.Fatal(err)
	}
	cer, err := o.bob.Approve(ctx, p.ID, client.ApproveRequest{Officer: "bob", Signature: string(o.Keys.Sign("bob", p))})
	if err != nil || cer.Status != state.StatusExecuted {
		tb.Fatalf("%s: %+v, %v", params.Operation(), cer, err)
	}
	o.converged()
	return p.ID
}

// New starts two nodes (n1 in DE, n2 in FR) forwarding over mutual TLS,
// initialises two officers (quorum 2) and creates each of kekIDs by
// ceremony: threshold 2, wrap and unwrap for role agent from DE, context
// field "dataset" required.
func New(tb testing.TB, kekIDs ...string) *Env {
	tb.Helper()
	s := Serve(tb, ServeOptions{Forward: true})
	e := &Env{PKI: s.PKI, URLs: []string{s.LeaderURL(), s.FollowerURL()}, Cluster: s.Cluster}
	offs := s.InitOfficers(tb, func(role identity.Role, name string) *client.Client { return e.Client(tb, role, name) })
	access := ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}
	for _, kekID := range kekIDs {
		offs.Execute(tb, ceremony.KEKCreate{KEKID: kekID, Policy: ceremony.Policy{Threshold: 2, ActivationTTL: time.Minute, Wrap: access, Unwrap: access, Context: []string{"dataset"}}})
	}
	return e
}
