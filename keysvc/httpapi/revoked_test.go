package httpapi_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/state"
)

// certFingerprint is identity.Fingerprint of the certificate in files.
func certFingerprint(t *testing.T, files identity.TLSFiles) string {
	t.Helper()
	b, err := os.ReadFile(files.Cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", files.Cert)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return identity.Fingerprint(cert)
}

func httpClient(t *testing.T, e *env, files identity.TLSFiles) *http.Client {
	t.Helper()
	return &http.Client{Transport: &http.Transport{TLSClientConfig: e.pki.ClientTLS(t, files)}}
}

// wantRevoked checks that hc is refused 403 certificate_revoked on url,
// with a message naming the certificate, the identity, the entry and why.
func wantRevoked(t *testing.T, hc *http.Client, url, fp, id string, entry, reason string) {
	t.Helper()
	resp, body := call(t, hc, http.MethodGet, url, nil)
	d := wantError(t, resp, body, http.StatusForbidden, errcode.CertRevoked)
	for _, s := range []string{"certificate " + fp, "of " + id, "revoked by entry " + entry, reason} {
		if !strings.Contains(d.Message, s) {
			t.Errorf("message %q does not say %q", d.Message, s)
		}
	}
}

func wantOK(t *testing.T, hc *http.Client, url string) {
	t.Helper()
	if resp, body := call(t, hc, http.MethodGet, url, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
}

// A revoked certificate, or any certificate of a revoked identity, is
// refused on every route, reads included, even on a connection opened
// before the revocation; other certificates are not.
func TestRevokedCertificateRefused(t *testing.T) {
	e := newEnv(t)
	health := e.srv.URL + "/v1/sys/health"
	a1, a1b, a2 := e.pki.Issue(t, identity.RoleAgent, "agent-1", "FR"), e.pki.Issue(t, identity.RoleAgent, "agent-1", "DE"), e.pki.Issue(t, identity.RoleAgent, "agent-2", "FR")
	c1, c1b, c2 := httpClient(t, e, a1), httpClient(t, e, a1b), httpClient(t, e, a2)
	for _, hc := range []*http.Client{c1, c1b, c2} {
		wantOK(t, hc, health) // the connections are open before the revocations
	}

	fp := certFingerprint(t, a1)
	e.fake.Revoke(state.Revocation{Fingerprint: fp, Entry: 7, Reason: "laptop stolen"})
	id1 := "custos://test/agent/agent-1?region=FR"
	for _, path := range []string{"/v1/sys/health", "/v1/ledger/checkpoint", "/v1/keks", "/v1/openapi.yaml", "/no/such/route"} {
		wantRevoked(t, c1, e.srv.URL+path, fp, id1, "7", "laptop stolen")
	}
	wantOK(t, c1b, health) // another certificate of the same identity
	wantOK(t, c2, health)

	e.fake.Revoke(state.Revocation{Identity: "agent/agent-1", Entry: 9, Reason: "host decommissioned"})
	wantRevoked(t, c1b, health, certFingerprint(t, a1b), "custos://test/agent/agent-1?region=DE", "9", "host decommissioned")
	wantOK(t, c2, health)
	// The refusal is in the node's log with the request id.
	if l := e.logs.Line("certificate_revoked"); l == "" {
		t.Error("refusal not logged")
	}
}

// Served by real nodes: right after a ceremony executes, a revoked agent,
// a removed officer and a removed node are refused on the API port of the
// nodes that remain, while others still work.
func TestRevocationCeremoniesOnAPIPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	srv := agentcluster.Serve(t, agentcluster.ServeOptions{Nodes: 3})
	e := &env{pki: srv.PKI}
	offs := srv.InitOfficers(t, func(role identity.Role, name string) *client.Client {
		return e.sdk(t, role, name, "DE", srv.LeaderURL())
	})
	offs.Execute(t, officertest.New(t).Add("carol"))

	victim := srv.Cluster.Follower().Info().ID
	var urls []string // the nodes that stay
	for id, u := range srv.URL {
		if id != victim {
			urls = append(urls, u)
		}
	}
	agent1 := e.pki.Issue(t, identity.RoleAgent, "agent-1", "DE")
	agent2 := e.pki.Issue(t, identity.RoleAgent, "agent-2", "DE")
	carolCert := e.pki.Issue(t, identity.RoleOfficer, "carol", "DE")
	aliceCert := e.pki.Issue(t, identity.RoleOfficer, "alice", "DE")
	nodeCert := e.pki.Issue(t, identity.RoleNode, victim, keysvctest.Region(victim))
	var stayer string
	for _, id := range []string{"n1", "n2", "n3"} {
		if id != victim {
			stayer = id
		}
	}
	otherNode := e.pki.Issue(t, identity.RoleNode, stayer, keysvctest.Region(stayer))
	all := map[string]*http.Client{}
	for name, f := range map[string]identity.TLSFiles{"agent-1": agent1, "agent-2": agent2, "carol": carolCert, "alice": aliceCert, "node": nodeCert, "other-node": otherNode} {
		all[name] = httpClient(t, e, f)
		for _, u := range urls {
			wantOK(t, all[name], u+"/v1/sys/health")
		}
	}
	entryOf := func(id string) string {
		c, found, err := srv.Cluster.Leader().Ceremony(id)
		if err != nil || !found {
			t.Fatalf("ceremony %s: %v", id, err)
		}
		return strconv.FormatUint(c.Closed, 10)
	}

	id := offs.Execute(t, ceremony.IdentityRevoke{Identity: "agent/agent-1", Reason: "agent host decommissioned"})
	for _, u := range urls {
		wantRevoked(t, all["agent-1"], u+"/v1/sys/health", certFingerprint(t, agent1), "custos://test/agent/agent-1?region=DE", entryOf(id), "agent host decommissioned")
		wantOK(t, all["agent-2"], u+"/v1/sys/health")
	}

	id = offs.Execute(t, ceremony.OfficerRemove{ID: "carol"})
	for _, u := range urls {
		wantRevoked(t, all["carol"], u+"/v1/ceremonies", certFingerprint(t, carolCert), "custos://test/officer/carol?region=DE", entryOf(id), "officer carol removed")
		wantOK(t, all["alice"], u+"/v1/ceremonies")
	}

	id = offs.Execute(t, ceremony.NodeRemove{ID: victim})
	for _, u := range urls {
		wantRevoked(t, all["node"], u+"/v1/ledger/checkpoint", certFingerprint(t, nodeCert), "custos://test/node/"+victim, entryOf(id), "node "+victim+" removed")
		wantOK(t, all["other-node"], u+"/v1/ledger/checkpoint")
		wantOK(t, all["agent-2"], u+"/v1/sys/health")
	}
}
