package httpapi_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

// appendN logs n entries through the fake directly.
func appendN(t *testing.T, f *httpapitest.Fake, n int) {
	t.Helper()
	for i := range n {
		if _, err := f.Append(context.Background(), ledger.Entry{
			Type: "test.entry", Actor: ledger.Actor{Identity: "x"}, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"n": fmt.Sprint(i), "html": "<a&b>"},
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	resp, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/sys/health", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var h client.Health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if h != (client.Health{Status: "ok", Node: "n1", Leader: "n1"}) {
		t.Errorf("health %+v", h)
	}
	if !requestIDRE.MatchString(resp.Header.Get(client.HeaderRequestID)) {
		t.Errorf("request id %q", resp.Header.Get(client.HeaderRequestID))
	}

	e.fake.SetNotReady(fmt.Errorf("%w: no leader known (raft state Candidate)", keysvc.ErrNotReady))
	resp, body = call(t, e.agent(t), "GET", e.srv.URL+"/v1/sys/health", nil)
	d := wantError(t, resp, body, 503, errcode.NotReady)
	if !strings.Contains(d.Message, "no leader known") || strings.Contains(d.Message, "keysvc:") {
		t.Errorf("not-ready message %q: want the reason, without package prefixes", d.Message)
	}
}

func TestCluster(t *testing.T) {
	e := newEnv(t)
	e.fake.AddMember(keysvc.Member{ID: "n2", Region: "FR", RaftAddr: "127.0.0.1:2", APIAddr: "https://127.0.0.1:2", Voter: true, Registered: true})
	appendN(t, e.fake, 3)
	st, err := e.sdk(t, identity.RoleAgent, "a", "DE").Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "n1" || st.Cluster != "test" || st.Leader.ID != "n1" || st.Leader.APIAddr != e.srv.URL ||
		st.LogSize != 3 || len(st.Members) != 2 || st.Members[1].ID != "n2" || st.Members[1].Region != "FR" ||
		!st.Members[0].Leader || st.Raft.State != "Leader" || st.Raft.Term != 3 {
		t.Errorf("status %+v", st)
	}
	// The wire names are the contract: check a few raw.
	_, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/sys/cluster", nil)
	for _, k := range []string{`"node_id":"n1"`, `"log_size":3`, `"api_addr":`, `"raft":{"state":"Leader"`, `"allowed_regions":["DE"]`} {
		if !strings.Contains(string(body), k) {
			t.Errorf("cluster JSON lacks %s: %s", k, body)
		}
	}
}

func TestCheckpointVerifies(t *testing.T) {
	e := newEnv(t)
	appendN(t, e.fake, 5)
	c := e.sdk(t, identity.RoleAuditor, "audit", "DE")
	note, err := c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.NodeKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, ledger.Origin("test"), keys...)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 5 || signer != ledger.KeyName("test", "n1") {
		t.Errorf("checkpoint size %d by %q", cp.Size, signer)
	}
	resp, _ := call(t, e.agent(t), "GET", e.srv.URL+"/v1/ledger/checkpoint", nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("checkpoint Content-Type %q", ct)
	}
	resp, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/ledger/keys", nil)
	if _, err := ledger.ParseNodeKeys(body); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("keys %q: %v", body, err)
	}
}

// A follower redirects leader-only requests to the leader; the SDK
// follows once and gets the leader's answer.
func TestFollowerRedirectsToLeader(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	leader := newEnvIn(t, pki, "n1", "DE")
	follower := newEnvIn(t, pki, "n2", "FR")
	follower.fake.SetLeader("n1", leader.srv.URL)
	appendN(t, leader.fake, 2)

	resp, body := call(t, follower.agent(t), "GET", follower.srv.URL+"/v1/ledger/checkpoint", nil)
	d := wantError(t, resp, body, http.StatusTemporaryRedirect, errcode.NotLeader)
	if got := resp.Header.Get("Location"); got != leader.srv.URL+"/v1/ledger/checkpoint" {
		t.Errorf("Location %q", got)
	}
	if resp.Header.Get(client.HeaderLeader) != leader.srv.URL || resp.Header.Get(client.HeaderLeaderID) != "n1" {
		t.Errorf("leader headers %v", resp.Header)
	}
	if !strings.Contains(d.Message, "n1") {
		t.Errorf("message %q does not name the leader", d.Message)
	}

	c := follower.sdk(t, identity.RoleAuditor, "audit", "DE")
	note, err := c.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.VerifyCheckpoint(note, ledger.Origin("test"), leader.fake.Key()); err != nil {
		t.Errorf("checkpoint via redirect: %v", err)
	}

	// Join through the follower lands on the leader, under the node's own certificate.
	n3 := follower.sdk(t, identity.RoleNode, "n3", "NL")
	info := client.NodeInfo{ID: "n3", Region: "NL", RaftAddr: "127.0.0.1:3", APIAddr: "https://127.0.0.1:3", Keys: "k"}
	res, err := n3.Join(context.Background(), info)
	if err != nil {
		t.Fatal(err)
	}
	if res.Leader != "n1" || len(leader.fake.Added()) != 1 || len(follower.fake.Added()) != 0 {
		t.Errorf("join result %+v; leader added %v, follower added %v", res, leader.fake.Added(), follower.fake.Added())
	}

	// A leader that itself says not_leader is not followed again.
	leader.fake.SetLeader("n2", follower.srv.URL)
	_, err = c.Checkpoint(context.Background())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != errcode.NotLeader || ae.Status != 307 {
		t.Errorf("redirect loop: got %v, want one not_leader APIError", err)
	}
}

func TestNoLeader(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLeader("", "")
	resp, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/ledger/checkpoint", nil)
	wantError(t, resp, body, 503, errcode.NoLeader)
	if resp.Header.Get("Location") != "" || resp.Header.Get(client.HeaderLeader) != "" {
		t.Errorf("no-leader answer has leader headers %v", resp.Header)
	}
}

func TestEntries(t *testing.T) {
	e := newEnv(t)
	appendN(t, e.fake, 5)
	hc := e.auditor(t)
	resp, body := call(t, hc, "GET", e.srv.URL+"/v1/ledger/entries?start=1&limit=3", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	var page struct {
		Start   uint64   `json:"start"`
		Entries []string `json:"entries"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if page.Start != 1 || len(page.Entries) != 3 {
		t.Fatalf("page %+v", page)
	}
	for i, s := range page.Entries {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := e.fake.Entries(uint64(1+i), 1)
		if string(raw) != string(want[0]) || !strings.Contains(string(raw), "<a&b>") {
			t.Errorf("entry %d: %s, want the exact canonical bytes %s", 1+i, raw, want[0])
		}
	}

	// Defaults, the end of the log, and the SDK.
	c := e.sdk(t, identity.RoleAuditor, "audit", "DE")
	all, err := c.Entries(context.Background(), 0, 0)
	if err != nil || len(all) != 5 {
		t.Errorf("default page: %d entries, %v", len(all), err)
	}
	none, err := c.Entries(context.Background(), 5, 10)
	if err != nil || len(none) != 0 {
		t.Errorf("page at the end: %d entries, %v", len(none), err)
	}
	_, err = c.Entries(context.Background(), 6, 10)
	if !client.IsCode(err, errcode.NotFound) {
		t.Errorf("start beyond the log: %v, want not_found", err)
	}

	// The page size is capped.
	appendN(t, e.fake, 1100)
	big, err := c.Entries(context.Background(), 0, 5000)
	if err != nil || len(big) != 1000 {
		t.Errorf("limit 5000: %d entries, %v; want the cap, 1000", len(big), err)
	}

	for _, q := range []string{"start=-1", "start=x", "limit=0", "limit=1e3", "start=01", "start=99999999999999999999"} {
		resp, body := call(t, hc, "GET", e.srv.URL+"/v1/ledger/entries?"+q, nil)
		wantError(t, resp, body, 400, errcode.BadRequest)
	}
}

func TestProofsVerify(t *testing.T) {
	e := newEnv(t)
	appendN(t, e.fake, 4)
	c := e.sdk(t, identity.RoleAgent, "agent", "DE")
	ctx := context.Background()
	old, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, e.fake, 7)
	cur, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldCP, _, err := ledger.VerifyCheckpoint(old, ledger.Origin("test"), e.fake.Key())
	if err != nil {
		t.Fatal(err)
	}
	curCP, _, err := ledger.VerifyCheckpoint(cur, ledger.Origin("test"), e.fake.Key())
	if err != nil {
		t.Fatal(err)
	}
	ip, err := c.InclusionProof(ctx, 6, curCP.Size)
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := e.fake.Entries(6, 1)
	if err := ledger.VerifyInclusion(curCP, 6, entry[0], ip.Hashes); err != nil {
		t.Errorf("inclusion: %v", err)
	}
	cp, err := c.ConsistencyProof(ctx, oldCP.Size, curCP.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(oldCP, curCP, cp.Hashes); err != nil {
		t.Errorf("consistency: %v", err)
	}
	// Raw JSON is the ledger package's exact shape.
	_, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/ledger/proof/inclusion?index=6&size=11", nil)
	if !strings.HasPrefix(string(body), `{"index":6,"size":11,"hashes":["`) {
		t.Errorf("inclusion JSON %s", body)
	}

	hc := e.agent(t)
	for _, tc := range []struct {
		q      string
		status int
		code   string
	}{
		{"inclusion?index=3&size=3", 400, errcode.BadRequest},
		{"inclusion?index=3", 400, errcode.BadRequest},
		{"inclusion?index=3&size=99", 404, errcode.NotFound},
		{"consistency?old=5&new=4", 400, errcode.BadRequest},
		{"consistency?new=4", 400, errcode.BadRequest},
		{"consistency?old=1&new=99", 404, errcode.NotFound},
	} {
		resp, body := call(t, hc, "GET", e.srv.URL+"/v1/ledger/proof/"+tc.q, nil)
		wantError(t, resp, body, tc.status, tc.code)
	}
}

func TestCanary(t *testing.T) {
	e := newEnv(t)
	appendN(t, e.fake, 2)
	c := e.sdk(t, identity.RoleOperator, "ops", "FR")
	i, err := c.Canary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if i != 2 {
		t.Errorf("canary index %d, want 2", i)
	}
	en, err := e.fake.Entry(i)
	if err != nil {
		t.Fatal(err)
	}
	if en.Type != "sys.canary" || en.Outcome != ledger.OutcomeOK || en.Node != "n1" ||
		en.Actor.Identity != "custos://test/operator/ops?region=FR" || en.Actor.Role != "operator" || en.Actor.Region != "FR" ||
		!strings.HasPrefix(en.Actor.CertFingerprint, "sha256:") || len(en.Actor.CertFingerprint) != 7+64 || !requestIDRE.MatchString(en.RequestID) {
		t.Errorf("canary entry %+v", en)
	}

	// The actor's fingerprint is the certificate the caller presented.
	files := e.pki.Issue(t, identity.RoleOperator, "ops2", "DE")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: e.pki.ClientTLS(t, files)}}
	resp, body := call(t, hc, "POST", e.srv.URL+"/v1/sys/canary", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("canary without body: %d %s", resp.StatusCode, body)
	}
	var li client.LogIndex
	_ = json.Unmarshal(body, &li)
	en, _ = e.fake.Entry(li.LogIndex)
	cert, _ := tls.LoadX509KeyPair(files.Cert, files.Key)
	if want := identity.Fingerprint(cert.Leaf); en.Actor.CertFingerprint != want {
		t.Errorf("fingerprint %q, want %q", en.Actor.CertFingerprint, want)
	}
	if en.RequestID != resp.Header.Get(client.HeaderRequestID) {
		t.Errorf("entry request id %q, header %q", en.RequestID, resp.Header.Get(client.HeaderRequestID))
	}

	// Body limits and strictness.
	resp, body = call(t, e.operator(t), "POST", e.srv.URL+"/v1/sys/canary", []byte(`{"x":1}`))
	wantError(t, resp, body, 400, errcode.BadRequest)
	resp, body = call(t, e.operator(t), "POST", e.srv.URL+"/v1/sys/canary", []byte(`{"x":"`+strings.Repeat("a", 70<<10)+`"}`))
	wantError(t, resp, body, 413, errcode.TooLarge)

	// No quorum: the outcome is unknown, said so.
	e.fake.SetError("Append", fmt.Errorf("%w: append: %w", keysvc.ErrNoQuorum, context.DeadlineExceeded))
	resp, body = call(t, e.operator(t), "POST", e.srv.URL+"/v1/sys/canary", nil)
	d := wantError(t, resp, body, 503, errcode.NoQuorum)
	if !strings.Contains(d.Message, "unknown") {
		t.Errorf("no_quorum message %q", d.Message)
	}
}

// Each route refuses the roles it does not allow, with 403 forbidden,
// before calling the node.
func TestRoleRefusals(t *testing.T) {
	e := newEnv(t)
	appendN(t, e.fake, 1)
	type route struct{ method, path string }
	cases := []struct {
		route
		refused []identity.Role
	}{
		{route{"POST", "/v1/sys/canary"}, []identity.Role{identity.RoleAgent, identity.RoleAuditor, identity.RoleOfficer, identity.RoleNode}},
		{route{"POST", "/v1/sys/join"}, []identity.Role{identity.RoleAgent, identity.RoleAuditor, identity.RoleOfficer, identity.RoleOperator}},
		{route{"GET", "/v1/ledger/entries"}, []identity.Role{identity.RoleAgent}},
		{route{"GET", "/metrics"}, []identity.Role{identity.RoleAgent, identity.RoleOfficer, identity.RoleNode}},
	}
	for _, tc := range cases {
		for _, role := range tc.refused {
			t.Run(string(role)+tc.path, func(t *testing.T) {
				before := len(e.fake.Calls())
				resp, body := call(t, e.as(t, role, "x-"+string(role), "DE"), tc.method, e.srv.URL+tc.path, []byte(`{}`))
				d := wantError(t, resp, body, 403, errcode.Forbidden)
				if !strings.Contains(d.Message, string(role)) {
					t.Errorf("message %q does not name the role", d.Message)
				}
				for _, m := range e.fake.Calls()[before:] {
					if m != "Append" { // a refused join is logged as a denied entry
						t.Errorf("refused request called %s", m)
					}
				}
			})
		}
	}
	// And every role may read health, cluster, checkpoint, proofs and keys.
	for _, role := range identity.Roles() {
		hc := e.as(t, role, "r-"+string(role), "DE")
		for _, p := range []string{"/v1/sys/health", "/v1/sys/cluster", "/v1/ledger/checkpoint", "/v1/ledger/keys", "/v1/ledger/proof/inclusion?index=0&size=1", "/v1/ledger/proof/consistency?old=0&new=1"} {
			if resp, body := call(t, hc, "GET", e.srv.URL+p, nil); resp.StatusCode != 200 {
				t.Errorf("%s GET %s: %d %s", role, p, resp.StatusCode, body)
			}
		}
	}
}

func TestJoin(t *testing.T) {
	e := newEnv(t)
	info := client.NodeInfo{ID: "n2", Region: "FR", RaftAddr: "127.0.0.1:2", APIAddr: "https://127.0.0.1:2", Keys: "k"}
	c := e.sdk(t, identity.RoleNode, "n2", "FR")
	res, err := c.Join(context.Background(), info)
	if err != nil {
		t.Fatal(err)
	}
	added := e.fake.Added()
	if res != (client.JoinResult{Node: "n2", Leader: "n1"}) || len(added) != 1 || added[0].Info != state.NodeInfo(info) ||
		added[0].Actor.Identity != "custos://test/node/n2?region=FR" || added[0].Actor.Role != "node" {
		t.Errorf("join %+v, added %+v", res, added)
	}

	// A certificate for another node or region cannot join this one; the
	// refusal is logged.
	for _, tc := range []struct{ name, region string }{{"n3", "FR"}, {"n2", "DE"}} {
		hc := e.as(t, identity.RoleNode, tc.name, tc.region)
		body, _ := json.Marshal(info)
		size := e.fake.Status().LogSize
		resp, rb := call(t, hc, "POST", e.srv.URL+"/v1/sys/join", body)
		wantError(t, resp, rb, 403, errcode.Forbidden)
		en, err := e.fake.Entry(size)
		if err != nil || en.Type != "node.join" || en.Outcome != ledger.OutcomeDenied || en.Details["node.id"] != "n2" || en.Reason == "" {
			t.Errorf("denied join entry %+v, %v", en, err)
		}
	}
	// A refused role is logged too.
	size := e.fake.Status().LogSize
	resp, rb := call(t, e.agent(t), "POST", e.srv.URL+"/v1/sys/join", []byte(`{}`))
	wantError(t, resp, rb, 403, errcode.Forbidden)
	if en, err := e.fake.Entry(size); err != nil || en.Type != "node.join" || en.Outcome != ledger.OutcomeDenied || en.Actor.Role != "agent" {
		t.Errorf("denied join entry %+v, %v", en, err)
	}

	// Node-level refusals map to their codes.
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("keysvc: add node %q: %w: region FR is not among the allowed regions DE (logged as entry 9)", "n2", keysvc.ErrRegionNotAllowed), 403, errcode.RegionNotAllowed},
		{fmt.Errorf("keysvc: add node %q: %w: other keys", "n2", keysvc.ErrNodeConflict), 409, errcode.Conflict},
		{fmt.Errorf("keysvc: add node %q: %w: bad keys", "n2", keysvc.ErrInvalidNode), 400, errcode.BadRequest},
	} {
		e.fake.SetError("AddNode", tc.err)
		_, err := c.Join(context.Background(), info)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code || strings.Contains(ae.Message, "keysvc:") {
			t.Errorf("%v: got %v", tc.err, err)
		}
	}
	e.fake.SetError("AddNode", nil)

	for b, code := range map[string]string{``: errcode.MalformedRequest, `{`: errcode.MalformedRequest,
		`{"id":"n2","bogus":1}`: errcode.BadRequest, `{"id":"n2"} {}`: errcode.MalformedRequest,
		// Never read as "n2\ufffd": invalid UTF-8 and lone surrogates are refused.
		"{\"id\":\"n2\xff\"}": errcode.MalformedRequest, `{"id":"n2\udc00"}`: errcode.MalformedRequest,
		`{"id":2}`: errcode.BadRequest, `null`: errcode.BadRequest} {
		resp, rb := call(t, e.as(t, identity.RoleNode, "n2", "FR"), "POST", e.srv.URL+"/v1/sys/join", []byte(b))
		wantError(t, resp, rb, 400, code)
	}
}

func TestErrorsNeverLeakCauses(t *testing.T) {
	e := newEnv(t)
	cause := &hsm.Error{Op: "sign", Label: "custos:node:identity", Err: hsm.ErrDevice}
	e.fake.SetError("Checkpoint", fmt.Errorf("keysvc: checkpoint: %w (CKR_DEVICE_ERROR)", cause))
	resp, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/ledger/checkpoint", nil)
	d := wantError(t, resp, body, 500, errcode.Internal)
	if d.Message != "internal error" || strings.Contains(string(body), "CKR") || strings.Contains(string(body), "custos:node") {
		t.Errorf("internal error body leaks the cause: %s", body)
	}
	line := e.logs.Line(d.RequestID)
	if !strings.Contains(line, "CKR_DEVICE_ERROR") || !strings.Contains(line, `"status":500`) {
		t.Errorf("the cause is not logged under the request id: %q", line)
	}

	e.fake.SetPanic("NodeKeys")
	resp, body = call(t, e.agent(t), "GET", e.srv.URL+"/v1/ledger/keys", nil)
	d = wantError(t, resp, body, 500, errcode.Internal)
	if strings.Contains(string(body), "panic") || !strings.Contains(e.logs.Line(d.RequestID), "injected panic") {
		t.Errorf("panic: body %s, log %q", body, e.logs.Line(d.RequestID))
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	resp, body := call(t, e.agent(t), "GET", e.srv.URL+"/v1/nope", nil)
	wantError(t, resp, body, 404, errcode.NotFound)
	resp, body = call(t, e.agent(t), "DELETE", e.srv.URL+"/v1/sys/health", nil)
	wantError(t, resp, body, 405, errcode.MethodNotAllowed)
}

func TestRequestIDsDiffer(t *testing.T) {
	e := newEnv(t)
	hc := e.agent(t)
	seen := map[string]bool{}
	for range 20 {
		resp, _ := call(t, hc, "GET", e.srv.URL+"/v1/sys/health", nil)
		id := resp.Header.Get(client.HeaderRequestID)
		if !requestIDRE.MatchString(id) || seen[id] {
			t.Fatalf("request id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
	// A client cannot choose its request id.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/sys/health", nil)
	req.Header.Set(client.HeaderRequestID, "chosen")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get(client.HeaderRequestID) == "chosen" {
		t.Error("the server took the client's request id")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.fake.SetMetrics(keysvc.Metrics{Appends: 7, Forwarded: 2,
		CommitLatency: keysvc.Histogram{Bounds: []float64{0.001, 0.01}, Counts: []uint64{3, 7}, Count: 7, Sum: 0.02}})
	e.fake.SetRaftStats(raft.Stats{TLSRejected: 12, TLSOverIPCap: 9})
	hc := e.operator(t)
	call(t, hc, "GET", e.srv.URL+"/v1/sys/health", nil)
	call(t, hc, "GET", e.srv.URL+"/v1/ledger/proof/inclusion?index=9&size=1", nil)
	resp, body := call(t, e.auditor(t), "GET", e.srv.URL+"/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`custos_http_requests_total{code="200",method="GET",route="/v1/sys/health"} 1`,
		`custos_http_requests_total{code="400",method="GET",route="/v1/ledger/proof/inclusion"} 1`,
		`custos_http_request_duration_seconds_bucket{code="200",method="GET",route="/v1/sys/health",le=`,
		`custos_ledger_appends_total 7`,
		`custos_ledger_forwarded_entries_total 2`,
		`custos_ledger_commit_latency_seconds_bucket{le="0.01"} 7`,
		`custos_raft_leader 1`,
		`custos_raft_tls_rejected_total 12`,
		`custos_raft_tls_over_ip_cap_total 9`,
		`custos_node_ready 1`,
		`go_goroutines`,
		`process_`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A connection without a client certificate, or with one from another CA,
// fails the handshake: no handler, not even the router, sees it.
func TestNoClientCertificateNeverReachesHandlers(t *testing.T) {
	e := newEnv(t)
	other := httpapitest.NewPKI(t, "test") // same cluster name, another CA
	caPool := e.pki.ClientTLS(t, e.pki.Issue(t, identity.RoleAgent, "a", "DE")).RootCAs
	for name, tc := range map[string]*tls.Config{
		"no certificate": {RootCAs: caPool, MinVersion: tls.VersionTLS13},
		"another CA": func() *tls.Config {
			c := other.ClientTLS(t, other.Issue(t, identity.RoleOperator, "ops", "DE"))
			c.RootCAs = caPool
			return c
		}(),
		"another cluster": func() *tls.Config {
			p := httpapitest.NewPKI(t, "elsewhere")
			c := p.ClientTLS(t, p.Issue(t, identity.RoleOperator, "ops", "DE"))
			c.RootCAs, c.VerifyConnection = caPool, nil
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
			resp, err := hc.Post(e.srv.URL+"/v1/sys/canary", "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("request answered %d", resp.StatusCode)
			}
		})
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Errorf("the node was called: %v", calls)
	}
	if strings.Contains(e.logs.String(), "request failed") {
		t.Errorf("a handler answered: %s", e.logs.String())
	}
}

// Served without TLS (a misconfiguration), every request is refused.
func TestPlainHTTPIsUnauthenticated(t *testing.T) {
	f := httpapitest.NewFake("test", "n1", "DE", "https://127.0.0.1:1")
	h := newHandler(f)
	for _, p := range []string{"/v1/sys/health", "/v1/sys/canary", "/nope"} {
		rec := serve(h, "GET", p)
		resp := rec.Result()
		wantError(t, resp, rec.Body.Bytes(), 401, errcode.Unauthenticated)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("the node was called: %v", calls)
	}
}

// TestNoInternalRoutes: node-to-node calls travel on the peer channel of
// the raft listener; the public API serves none of them, to nodes either.
func TestNoInternalRoutes(t *testing.T) {
	e := newEnv(t)
	node := e.as(t, identity.RoleNode, "n2", "FR")
	for _, path := range []string{"/v1/internal/ledger/append", "/v1/internal/kek/seal", "/v1/internal/kek/discard",
		"/v1/internal/kek/attest", "/v1/internal/kek/release"} {
		resp, body := call(t, node, "POST", e.srv.URL+path, []byte(`{}`))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", path, resp.StatusCode, body)
		}
	}
}

func mustMarshal(t *testing.T, e ledger.Entry) []byte {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
