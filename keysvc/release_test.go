package keysvc_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/peer"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// TestReleaseRefusesALyingMember: a member node, with its certificate and
// its place in the log, asks its peers for their shares without a real
// client request. It can append whatever entries it likes in its own name;
// every peer still refuses, with a stable code, logs the refusal, and sends
// no share.
func TestReleaseRefusesALyingMember(t *testing.T) {
	f, ctx, c, w := vaultFixture(t, 60*time.Second)
	f.c.WaitConverged()
	liar := f.c.Follower() // the compromised member
	var asked *keysvc.Node // a peer it asks
	for _, id := range []string{"n1", "n2", "n3"} {
		if n := f.c.Node(id); n != nil && n != liar {
			asked = n
			break
		}
	}
	// A real unwrap through the liar, to have a genuine activation to replay.
	if _, _, err := liar.Unwrap(ctx, agent.Unwrap("vault", w.Blob, c), "vault", c, w.Blob, ""); err != nil {
		t.Fatal(err)
	}
	genuine := f.entries(ledger.TypeActivate)
	if len(genuine) != 1 || genuine[0].Actor.Identity != agent.ID.String() || genuine[0].Node != liar.Info().ID {
		t.Fatalf("activation entries: %+v", genuine)
	}
	real := genuine[0]

	// activation appends a kek.activate entry in the liar's name, as a
	// compromised node may, and returns its index.
	activation := func(e ledger.Entry) uint64 {
		t.Helper()
		i, err := liar.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	forge := func(signer *keysvctest.Client, mutate func(*reqsig.Request)) ledger.Entry {
		ch, _ := reqsig.ContextHash(c)
		r := reqsig.Request{Op: reqsig.OpUnwrap, KEKID: "vault", Version: 1, Body: reqsig.BodyHash(w.Blob), Context: ch}
		if mutate != nil {
			mutate(&r)
		}
		return activationEntry(signer, signer.Sign(r).Signed)
	}
	agentFR := keysvctest.NewClient("test", identity.RoleAgent, "agent-fr", "FR")
	officerCert := keysvctest.NewClient("test", identity.RoleOfficer, "alice", "DE")

	// A forged client name: the actor says agent-1, the signature is another's.
	forgedName := forge(agentFR, nil)
	forgedName.Actor = real.Actor
	// A tampered signature.
	tampered := forge(agent, nil)
	sig, _ := base64.StdEncoding.DecodeString(tampered.Details["signature"])
	sig[len(sig)-1] ^= 1
	tampered.Details["signature"] = base64.StdEncoding.EncodeToString(sig)
	// A replay: the genuine activation's signed request, committed again.
	replay := real
	replay.Index, replay.Time = 0, time.Time{}
	// A stale request: signed ten minutes ago.
	stale := forge(&keysvctest.Client{ID: agent.ID, Cert: agent.Cert, Key: agent.Key, Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}, nil)
	// A request for another KEK version.
	otherVersion := forge(agent, func(r *reqsig.Request) { r.Version = 2 })

	var notActivation uint64
	for _, e := range f.entries(ledger.TypeWrap) {
		notActivation = e.Index
	}
	cases := []struct {
		name string
		from string
		req  peer.ReleaseRequest
		code string
	}{
		{"no activation at that index", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: notActivation, Context: c}, errcode.ReleaseNoActivation},
		{"an index beyond the log", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: 1 << 40, Context: c}, errcode.ReleaseNotCaughtUp},
		{"forged client name", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(forgedName), Context: c}, errcode.ReleaseSignature},
		{"tampered signature", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(tampered), Context: c}, errcode.ReleaseSignature},
		{"replayed client signature", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(replay), Context: c}, errcode.ReleaseReplayed},
		{"stale client signature", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(stale), Context: c}, errcode.ReleaseSignature},
		{"signed for another version", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(otherVersion), Context: c}, errcode.ReleaseSignature},
		{"region-denied agent", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(forge(agentFR, nil)), Context: c}, errcode.ReleaseDenied},
		{"an officer is no agent", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(forge(officerCert, nil)), Context: c}, errcode.ReleaseDenied},
		{"context other than signed", liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: activation(forge(agent, nil)), Context: wrapkey.Context{"dataset": "finance"}}, errcode.ReleaseSignature},
		{"another node's activation", "n9", peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: real.Index, Context: c}, errcode.ReleaseNotMember},
		{"to the peer itself", asked.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: real.Index, Context: c}, errcode.ReleaseToSelf},
	}
	before := asked.Metrics().SharesRelease
	for _, tc := range cases {
		_, err := asked.ReleaseShare(ctx, tc.from, tc.req)
		if !errors.Is(err, keysvc.ErrReleaseRefused) || !strings.Contains(err.Error(), tc.code) {
			t.Errorf("%s: %v, want refusal %s", tc.name, err, tc.code)
		}
	}
	// The genuine activation gets at most one release from each peer: the
	// peer that released already refuses a second time; the one that did
	// not may release once, and only once.
	for _, p := range []*keysvc.Node{f.c.Node("n1"), f.c.Node("n2"), f.c.Node("n3")} {
		if p == nil || p == liar {
			continue
		}
		_, err1 := p.ReleaseShare(ctx, liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: real.Index, Context: c})
		_, err2 := p.ReleaseShare(ctx, liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: real.Index, Context: c})
		if err2 == nil || !strings.Contains(err2.Error(), errcode.ReleaseDuplicate) {
			t.Errorf("%s: second release for one activation: %v (first: %v)", p.Info().ID, err2, err1)
		}
	}
	if got := asked.Metrics().SharesRelease - before; got > 1 {
		t.Errorf("peer released %d shares to the liar, want at most the one the genuine activation allowed", got)
	}
	// Every refusal is in the log, with its code.
	f.c.WaitConverged()
	denied := map[string]int{}
	for _, e := range f.entries(ledger.TypeRelease) {
		if e.Outcome == ledger.OutcomeDenied {
			denied[strings.SplitN(e.Reason, ":", 2)[0]]++
		}
	}
	for _, tc := range cases {
		if denied[tc.code] == 0 {
			t.Errorf("refusal %s (%s) not logged: %v", tc.code, tc.name, denied)
		}
	}
}

// TestActivationNeedsASignedRequest: a serving node refuses to activate
// without the client's signed request, or with one for another operation,
// and logs the refusal.
func TestActivationNeedsASignedRequest(t *testing.T) {
	f, ctx, c, w := vaultFixture(t, 30*time.Second)
	_, _, err := f.n.Unwrap(ctx, agentDE, "vault", c, w.Blob, "")
	wantKeyOp(t, "unwrap without a signature", err, reqsig.CodeMissing)
	other := keysvctest.NewClient("test", identity.RoleAgent, "agent-2", "DE")
	lying := agentDE
	lying.Signed = other.Unwrap("vault", w.Blob, c).Signed
	_, _, err = f.n.Unwrap(ctx, lying, "vault", c, w.Blob, "")
	wantKeyOp(t, "unwrap signed by someone else", err, reqsig.CodeMismatch)
	wrapSigned := agent.Sign(reqsig.Request{Op: reqsig.OpWrap, KEKID: "vault"})
	_, _, err = f.n.Unwrap(ctx, wrapSigned, "vault", c, w.Blob, "")
	wantKeyOp(t, "unwrap signed as a wrap", err, reqsig.CodeMismatch)
	signed := agent.Unwrap("vault", w.Blob, c)
	if _, _, err := f.n.Unwrap(ctx, signed, "vault", c, w.Blob, ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.n.Unwrap(ctx, signed, "vault", c, w.Blob, "")
	wantKeyOp(t, "the same signed request again", err, reqsig.CodeReplayed)
	if es := f.entries(ledger.TypeActivate); len(es) != 1 {
		t.Errorf("%d activations, want 1", len(es))
	}
}

// TestForwardedEntriesNameRealActors: the leader refuses a follower's
// entries that speak for another node, or an activation whose client
// signature does not hold.
func TestForwardedEntriesNameRealActors(t *testing.T) {
	f, ctx, c, w := vaultFixture(t, 30*time.Second)
	if _, _, err := f.n.Unwrap(ctx, agent.Unwrap("vault", w.Blob, c), "vault", c, w.Blob, ""); err != nil {
		t.Fatal(err)
	}
	act := f.entries(ledger.TypeActivate)[0]
	n3 := ledger.Actor{Identity: identity.Identity{Cluster: "test", Name: "n3", Role: identity.RoleNode, Region: "NL"}.String(), Role: "node", Region: "NL"}
	release := ledger.Entry{Type: ledger.TypeRelease, Actor: n3, Outcome: ledger.OutcomeOK}
	if err := f.n.CheckForwarded("n3", release); err != nil {
		t.Errorf("n3's own release: %v", err)
	}
	if err := f.n.CheckForwarded("n2", release); !errors.Is(err, keysvc.ErrForgedEntry) {
		t.Errorf("n2 forwarding n3's release: %v", err)
	}
	release.Actor = agent.Caller().Actor
	if err := f.n.CheckForwarded("n2", release); !errors.Is(err, keysvc.ErrForgedEntry) {
		t.Errorf("a release in a client's name: %v", err)
	}
	if err := f.n.CheckForwarded("n2", act); err != nil {
		t.Errorf("a genuine activation: %v", err)
	}
	forged := act
	forged.Details = map[string]string{}
	for k, v := range act.Details {
		forged.Details[k] = v
	}
	forged.Actor = keysvctest.NewClient("test", identity.RoleAgent, "agent-2", "DE").Caller().Actor
	if err := f.n.CheckForwarded("n2", forged); !errors.Is(err, keysvc.ErrForgedEntry) {
		t.Errorf("an activation naming another client: %v", err)
	}
}

// TestReleaseRefusesRevokedClient: right after an identity.revoke ceremony
// commits, no peer releases a share for that client's signed request, and
// the serving node refuses to activate for it.
func TestReleaseRefusesRevokedClient(t *testing.T) {
	f, ctx, c, w := vaultFixture(t, 30*time.Second)
	gone := keysvctest.NewClient("test", identity.RoleAgent, "agent-gone", "DE")
	if _, _, err := f.n.Unwrap(ctx, gone.Unwrap("vault", w.Blob, c), "vault", c, w.Blob, ""); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}
	f.mustExecute(ceremony.IdentityRevoke{Identity: "agent/agent-gone", Reason: "laptop stolen"})
	f.c.WaitConverged()
	_, _, err := f.n.Unwrap(ctx, gone.Unwrap("vault", w.Blob, c), "vault", c, w.Blob, "")
	wantKeyOp(t, "unwrap by a revoked agent", err, reqsig.CodeUntrusted)

	liar := f.c.Follower()
	i, err := liar.Append(ctx, activationEntry(gone, gone.Unwrap("vault", w.Blob, c).Signed))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		p := f.c.Node(id)
		if p == nil || p == liar {
			continue
		}
		_, err := p.ReleaseShare(ctx, liar.Info().ID, peer.ReleaseRequest{KEKID: "vault", Version: 1, Activation: i, Context: c})
		if !errors.Is(err, keysvc.ErrReleaseRefused) || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("%s released for a revoked agent: %v", id, err)
		}
	}
}

// TestPeerChannelRefusesForgedForwarding: over the real peer channel, the
// leader refuses a follower's entry in another node's name, and serves its
// own; the refusal names the code.
func TestPeerChannelRefusesForgedForwarding(t *testing.T) {
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{PeerChannel: true})
	fol := c.Follower()
	ctx := ctxT(t, 20*time.Second)
	own := ledger.Entry{Type: "test.note", Actor: ledger.Actor{Identity: identity.Identity{Cluster: "test", Name: fol.Info().ID,
		Role: identity.RoleNode, Region: fol.Info().Region}.String(), Role: "node"}, Outcome: ledger.OutcomeOK}
	if _, err := fol.Append(ctx, own); err != nil {
		t.Fatalf("a follower's own entry over the peer channel: %v", err)
	}
	if fol.Metrics().Forwarded == 0 {
		t.Error("not forwarded")
	}
	other := "n1"
	if c.Leader().Info().ID == "n1" || fol.Info().ID == "n1" {
		other = "n2"
		if c.Leader().Info().ID == "n2" || fol.Info().ID == "n2" {
			other = "n3"
		}
	}
	forged := own
	forged.Actor.Identity = identity.Identity{Cluster: "test", Name: other, Role: identity.RoleNode, Region: "DE"}.String()
	_, err := fol.Append(ctx, forged)
	if err == nil || !strings.Contains(err.Error(), "forged_entry") {
		t.Errorf("an entry in %s's name forwarded by %s: %v", other, fol.Info().ID, err)
	}
}

// vaultFixture is a 3-node cluster with officers, KEK "vault" (activation
// TTL 0: every unwrap activates) and a data key wrapped under context c.
func vaultFixture(t *testing.T, timeout time.Duration) (*officers, context.Context, wrapkey.Context, keysvc.Wrapped) {
	t.Helper()
	f := newOfficersOn(t, 3, "alice", "bob")
	f.init(2, "alice", "bob")
	f.mustExecute(ceremony.KEKCreate{KEKID: "vault", Policy: keyOpPolicy(0)})
	ctx := ctxT(t, timeout)
	c := wrapkey.Context{"dataset": "hr"}
	w, err := f.n.Wrap(ctx, agentDE, "vault", c, []byte("0123456789abcdef0123456789abcdef"), "")
	if err != nil {
		t.Fatal(err)
	}
	return f, ctx, c, w
}

// activationEntry is the kek.activate entry of KEK "vault" v1 for signed,
// signed by client, as a node (honest or not) appends it.
func activationEntry(client *keysvctest.Client, signed *reqsig.Signed) ledger.Entry {
	r, _ := reqsig.Parse(signed.Message)
	e := ledger.Entry{Type: ledger.TypeActivate, Actor: keysvc.Actor(client.ID, client.Cert), KEKID: "vault", KEKVersion: 1,
		RequestID: r.RequestID, Outcome: ledger.OutcomeOK, Details: map[string]string{"ttl_seconds": "0"}}
	signed.AddDetails(e.Details)
	return e
}
