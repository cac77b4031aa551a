package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// keyOpCluster is a 2-node cluster of real keysvc nodes, each behind its own
// API over mutual TLS and forwarding (appends, share release) through
// httpapi.Forwarder, with initialised officers and a helper that runs a
// ceremony to execution.
type keyOpCluster struct {
	env                    *env
	c                      *keysvctest.Cluster
	leaderURL, followerURL string
	logs                   map[string]*testlog.Buffer
	execute                func(t *testing.T, params ceremony.Params)
}

func newKeyOpCluster(t *testing.T) *keyOpCluster {
	t.Helper()
	kc := &keyOpCluster{logs: map[string]*testlog.Buffer{}}
	for _, id := range []string{"n1", "n2"} {
		kc.logs[id] = &testlog.Buffer{}
	}
	s := agentcluster.Serve(t, agentcluster.ServeOptions{Forward: true, Logger: func(id string) *slog.Logger {
		return slog.New(slog.NewJSONHandler(kc.logs[id], &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	kc.env, kc.c = &env{pki: s.PKI}, s.Cluster
	kc.leaderURL, kc.followerURL = s.LeaderURL(), s.FollowerURL()
	offs := s.InitOfficers(t, func(role identity.Role, name string) *client.Client {
		return kc.env.sdk(t, role, name, "DE", kc.leaderURL)
	})
	kc.execute = func(t *testing.T, params ceremony.Params) {
		t.Helper()
		offs.Execute(t, params)
	}
	return kc
}

// post sends body to path on base as hc and returns the answer.
func post(t *testing.T, hc *http.Client, base, path string, body any) (*http.Response, []byte) {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	return call(t, hc, http.MethodPost, base+path, b)
}

// shape decodes a JSON object and checks it has exactly keys.
func shape(t *testing.T, what string, body []byte, keys ...string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %s: %v", what, body, err)
	}
	wantShape(t, what, m, keys...)
	return m
}

func wantShape(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("%s: keys %v, want %v", what, got, keys)
	}
}

// b64 reads a base64 string member of m.
func b64(t *testing.T, m map[string]any, key string) []byte {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("%q is %T, want a string", key, m[key])
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%q: %v", key, err)
	}
	return b
}

// Wrap, unwrap, datakey, rewrap and both batches through two real nodes:
// the SDK and raw HTTP, the exact JSON shapes, every refusal's status and
// code, and no data key in the API's logs.
func TestKeyOpRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-node cluster")
	}
	kc := newKeyOpCluster(t)
	e, ctx := kc.env, context.Background()
	access := ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE"}}
	pol := ceremony.Policy{Threshold: 2, ActivationTTL: time.Minute, Wrap: access, Unwrap: access, Context: []string{"dataset"}}
	kc.execute(t, ceremony.KEKCreate{KEKID: "payroll", Policy: pol})
	kc.execute(t, ceremony.KEKCreate{KEKID: "other", Policy: pol})

	agent := e.sdk(t, identity.RoleAgent, "agent-1", "DE", kc.leaderURL)
	agentF := e.sdk(t, identity.RoleAgent, "agent-1", "DE", kc.followerURL)
	raw := e.signed(t, identity.RoleAgent, "agent-1", "DE")
	hr := map[string]string{"dataset": "hr"}
	dek := make([]byte, 32)
	rand.Read(dek)
	var secrets [][]byte // every data key the test saw, to look for in the logs
	secrets = append(secrets, dek)

	// Wrap on the leader, unwrap on the follower (which activates the key
	// from its share and the leader's, released over the internal route).
	w, err := agent.Wrap(ctx, "payroll", dek, hr)
	if err != nil || w.KEKVersion != 1 || w.LogIndex == 0 || len(w.Wrapped) == 0 {
		t.Fatalf("wrap: %+v, %v", w, err)
	}
	u, err := agentF.Unwrap(ctx, "payroll", w.Wrapped, hr)
	if err != nil || !bytes.Equal(u.Plaintext, dek) || u.LogIndex <= w.LogIndex {
		t.Fatalf("unwrap through the follower: %+v, %v", u, err)
	}

	// Raw shapes.
	resp, body := post(t, raw, kc.followerURL, "/v1/keks/payroll/wrap", client.WrapRequest{Plaintext: dek, Context: hr})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("raw wrap: %d %s", resp.StatusCode, body)
	}
	m := shape(t, "wrap", body, "wrapped", "kek_version", "log_index")
	if m["kek_version"] != 1.0 || m["log_index"].(float64) <= float64(u.LogIndex) {
		t.Errorf("wrap answer %s", body)
	}
	rawBlob := b64(t, m, "wrapped")
	resp, body = post(t, raw, kc.leaderURL, "/v1/keks/payroll/unwrap", client.UnwrapRequest{Wrapped: rawBlob, Context: hr})
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("raw unwrap: %d %v", resp.StatusCode, resp.Header)
	}
	m = shape(t, "unwrap", body, "plaintext", "log_index")
	if !bytes.Equal(b64(t, m, "plaintext"), dek) || m["log_index"].(float64) == 0 {
		t.Errorf("unwrap answer %v", m)
	}

	// Datakey, both modes.
	dk, err := agent.DataKey(ctx, "payroll", hr, false)
	if err != nil || len(dk.Plaintext) != 32 || dk.KEKVersion != 1 || dk.LogIndex == 0 {
		t.Fatalf("datakey: %+v, %v", dk, err)
	}
	secrets = append(secrets, dk.Plaintext)
	if back, err := agentF.Unwrap(ctx, "payroll", dk.Wrapped, hr); err != nil || !bytes.Equal(back.Plaintext, dk.Plaintext) {
		t.Fatalf("datakey round trip: %v", err)
	}
	resp, body = post(t, raw, kc.leaderURL, "/v1/keks/payroll/datakey", client.DataKeyRequest{Context: hr})
	if resp.StatusCode != 200 {
		t.Fatalf("raw datakey: %d %s", resp.StatusCode, body)
	}
	m = shape(t, "datakey", body, "plaintext", "wrapped", "kek_version", "log_index")
	secrets = append(secrets, b64(t, m, "plaintext"))
	resp, body = post(t, raw, kc.leaderURL, "/v1/keks/payroll/datakey", client.DataKeyRequest{Context: hr, WrappedOnly: true})
	if resp.StatusCode != 200 {
		t.Fatalf("raw wrapped-only datakey: %d %s", resp.StatusCode, body)
	}
	shape(t, "wrapped-only datakey", body, "wrapped", "kek_version", "log_index")
	dkw, err := agent.DataKey(ctx, "payroll", hr, true)
	if err != nil || dkw.Plaintext != nil || len(dkw.Wrapped) == 0 {
		t.Fatalf("wrapped-only datakey: %+v, %v", dkw, err)
	}
	if back, err := agentF.Unwrap(ctx, "payroll", dkw.Wrapped, hr); err != nil || len(back.Plaintext) != 32 {
		t.Fatalf("wrapped-only datakey round trip: %v", err)
	} else {
		secrets = append(secrets, back.Plaintext)
	}

	// Batches: one result per item, in order; a failed item carries its
	// error and the index of its denied entry.
	wb, err := agent.WrapBatch(ctx, "payroll", []client.WrapItem{
		{Plaintext: dek, Context: hr}, {Plaintext: dek, Context: map[string]string{"purpose": "x"}}, {Plaintext: dk.Plaintext, Context: hr},
	})
	if err != nil || len(wb.Results) != 3 {
		t.Fatalf("wrap batch: %+v, %v", wb, err)
	}
	// One entry logs the batch: it is every item's receipt.
	batchIdx := wb.Results[0].LogIndex
	if wb.Results[0].Err() != nil || wb.Results[2].Err() != nil || batchIdx == 0 || wb.Results[2].LogIndex != batchIdx || wb.Results[0].KEKVersion != 1 {
		t.Fatalf("wrap batch results: %+v", wb.Results)
	}
	if ie := wb.Results[1].Error; ie == nil || ie.Code != errcode.ContextMissing || ie.LogIndex != batchIdx || ie.Message == "" || wb.Results[1].Wrapped != nil {
		t.Errorf("wrap batch item 1: %+v", wb.Results[1])
	}
	aud := e.sdk(t, identity.RoleAuditor, "audit", "NL", kc.followerURL)
	kc.c.WaitConverged()
	if raw, err := aud.Entries(ctx, batchIdx, 1); err != nil || len(raw) != 1 {
		t.Fatalf("batch entry: %v", err)
	} else if en, err := ledger.ParseEntry(raw[0]); err != nil || en.Type != ledger.TypeWrap || en.Details["items"] != "3" {
		t.Errorf("batch entry %+v, %v", en, err)
	}
	tampered := slices.Clone(w.Wrapped)
	tampered[len(tampered)-1] ^= 1
	ub, err := agentF.UnwrapBatch(ctx, "payroll", []client.UnwrapItem{
		{Wrapped: wb.Results[0].Wrapped, Context: hr}, {Wrapped: tampered, Context: hr}, {Wrapped: wb.Results[2].Wrapped, Context: hr},
	})
	if err != nil || len(ub.Results) != 3 {
		t.Fatalf("unwrap batch: %+v, %v", ub, err)
	}
	if !bytes.Equal(ub.Results[0].Plaintext, dek) || !bytes.Equal(ub.Results[2].Plaintext, dk.Plaintext) || ub.Results[0].LogIndex == 0 {
		t.Errorf("unwrap batch results: %+v", ub.Results)
	}
	if ie := ub.Results[1].Error; ie == nil || ie.Code != errcode.UnwrapFailed || ie.LogIndex == 0 || ie.LogIndex != ub.Results[0].LogIndex {
		t.Errorf("unwrap batch item 1: %+v", ub.Results[1])
	}
	var ie *client.ItemError
	if !errors.As(ub.Results[1].Err(), &ie) || ub.Results[0].Err() != nil {
		t.Errorf("Err: %v, %v", ub.Results[0].Err(), ub.Results[1].Err())
	}
	// Raw batch shapes.
	resp, body = post(t, raw, kc.leaderURL, "/v1/keks/payroll/wrap/batch", client.WrapBatchRequest{Items: []client.WrapItem{{Plaintext: dek, Context: hr}, {Plaintext: nil, Context: hr}}})
	if resp.StatusCode != 200 {
		t.Fatalf("raw wrap batch: %d %s", resp.StatusCode, body)
	}
	var batch struct{ Results []map[string]any }
	m = shape(t, "wrap batch", body, "results")
	_ = json.Unmarshal(body, &batch)
	wantShape(t, "wrap batch result 0", batch.Results[0], "wrapped", "kek_version", "log_index")
	wantShape(t, "wrap batch result 1", batch.Results[1], "error")
	em, _ := batch.Results[1]["error"].(map[string]any)
	wantShape(t, "wrap batch error", em, "code", "message", "log_index")
	if em["code"] != errcode.InvalidPlaintext {
		t.Errorf("wrap batch error %v", em)
	}
	resp, body = post(t, raw, kc.followerURL, "/v1/keks/payroll/unwrap/batch", client.UnwrapBatchRequest{Items: []client.UnwrapItem{{Wrapped: w.Wrapped, Context: hr}, {Wrapped: []byte("junk"), Context: hr}}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("raw unwrap batch: %d %s", resp.StatusCode, body)
	}
	shape(t, "unwrap batch", body, "results")
	batch.Results = nil
	_ = json.Unmarshal(body, &batch)
	wantShape(t, "unwrap batch result 0", batch.Results[0], "plaintext", "log_index")
	if !bytes.Equal(b64(t, batch.Results[0], "plaintext"), dek) {
		t.Errorf("unwrap batch plaintext %v", batch.Results[0])
	}
	wantShape(t, "unwrap batch result 1", batch.Results[1], "error")
	em, _ = batch.Results[1]["error"].(map[string]any)
	wantShape(t, "unwrap batch error", em, "code", "message", "log_index")
	if em["code"] != errcode.MalformedBlob {
		t.Errorf("unwrap batch error %v", em)
	}

	// The public key of a version: any role, its creation entry's index.
	k, err := agent.KEK(ctx, "payroll")
	if err != nil {
		t.Fatal(err)
	}
	pk, err := aud.PublicKey(ctx, "payroll", 1)
	if err != nil || pk.KEKID != "payroll" || pk.KEKVersion != 1 || pk.State != ledger.KEKActive || pk.LogIndex == 0 ||
		pk.LogIndex != k.Versions[0].Created || !bytes.Equal(pk.PublicKey, k.Versions[0].PublicKey) {
		t.Fatalf("public key: %+v, %v (kek %+v)", pk, err, k.Versions[0])
	}
	// With the entry that dealt it, which names the key's hash.
	if pe, err := ledger.ParseEntry(pk.Entry); err != nil || pe.Index != pk.LogIndex || pe.Type != ledger.TypeExecute ||
		pe.Details["kek.id"] != "payroll" || pe.Details["kek.version"] != "1" || pe.Details["kek.public_key"] != fmt.Sprintf("sha256:%x", sha256.Sum256(pk.PublicKey)) {
		t.Fatalf("public key entry: %+v, %v", pe, err)
	}
	resp, body = call(t, e.as(t, identity.RoleNode, "n1", "DE"), http.MethodGet, kc.leaderURL+"/v1/keks/payroll/versions/1/public", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("public key as a node: %d %s", resp.StatusCode, body)
	}
	shape(t, "public key", body, "kek_id", "kek_version", "public_key", "state", "log_index", "entry")
	_, err = aud.PublicKey(ctx, "payroll", 7)
	wantCode(t, "public key of an unknown version", err, 404, errcode.UnknownKEK)
	_, err = aud.PublicKey(ctx, "nope", 1)
	wantCode(t, "public key of an unknown kek", err, 404, errcode.UnknownKEK)
	resp, body = call(t, raw, http.MethodGet, kc.leaderURL+"/v1/keks/payroll/versions/x/public", nil)
	wantError(t, resp, body, 400, errcode.BadRequest)

	// Refusals: each with its status and code, in the error body's shape.
	fr := e.signed(t, identity.RoleAgent, "agent-1", "FR")
	auditor := e.signed(t, identity.RoleAuditor, "audit", "DE")
	for _, tc := range []struct {
		what   string
		hc     *http.Client
		base   string
		path   string
		body   any
		status int
		code   string
	}{
		{"wrap from FR", fr, kc.leaderURL, "wrap", client.WrapRequest{Plaintext: dek, Context: hr}, 403, errcode.RegionDenied},
		{"unwrap from FR", fr, kc.followerURL, "unwrap", client.UnwrapRequest{Wrapped: w.Wrapped, Context: hr}, 403, errcode.RegionDenied},
		{"unwrap by an auditor", auditor, kc.followerURL, "unwrap", client.UnwrapRequest{Wrapped: w.Wrapped, Context: hr}, 403, errcode.AccessDenied},
		{"datakey by an auditor", auditor, kc.leaderURL, "datakey", client.DataKeyRequest{Context: hr}, 403, errcode.AccessDenied},
		{"wrap without dataset", raw, kc.leaderURL, "wrap", client.WrapRequest{Plaintext: dek, Context: map[string]string{"purpose": "x"}}, 400, errcode.ContextMissing},
		{"unwrap without context", raw, kc.leaderURL, "unwrap", client.UnwrapRequest{Wrapped: w.Wrapped}, 400, errcode.ContextMissing},
		{"malformed blob", raw, kc.followerURL, "unwrap", client.UnwrapRequest{Wrapped: []byte("not a blob"), Context: hr}, 400, errcode.MalformedBlob},
		{"blob of another kek", raw, kc.followerURL, "unwrap", client.UnwrapRequest{Wrapped: w.Wrapped, Context: hr}, 400, errcode.WrongKEK},
		{"tampered blob", raw, kc.followerURL, "unwrap", client.UnwrapRequest{Wrapped: tampered, Context: hr}, 400, errcode.UnwrapFailed},
		{"wrong context", raw, kc.followerURL, "unwrap", client.UnwrapRequest{Wrapped: w.Wrapped, Context: map[string]string{"dataset": "finance"}}, 400, errcode.UnwrapFailed},
		{"rewrap of a tampered blob", raw, kc.leaderURL, "rewrap", client.RewrapRequest{Wrapped: tampered, Context: hr}, 400, errcode.UnwrapFailed},
		{"unknown kek", raw, kc.leaderURL, "wrap", client.WrapRequest{Plaintext: dek, Context: hr}, 404, errcode.UnknownKEK},
		{"empty plaintext", raw, kc.leaderURL, "wrap", []byte(`{"plaintext":"","context":{"dataset":"hr"}}`), 400, errcode.InvalidPlaintext},
		{"no plaintext", raw, kc.leaderURL, "wrap", []byte(`{"context":{"dataset":"hr"}}`), 400, errcode.InvalidPlaintext},
		{"plaintext over 4096 bytes", raw, kc.leaderURL, "wrap", client.WrapRequest{Plaintext: make([]byte, 4097), Context: hr}, 400, errcode.InvalidPlaintext},
		{"malformed JSON", raw, kc.leaderURL, "wrap", []byte(`{"plaintext":`), 400, errcode.MalformedRequest},
		{"not base64", raw, kc.leaderURL, "wrap", []byte(`{"plaintext":"!!","context":{}}`), 400, errcode.BadRequest},
		{"unknown field", raw, kc.leaderURL, "wrap", []byte(`{"plaintext":"AA==","context":{},"extra":1}`), 400, errcode.BadRequest},
		{"trailing data", raw, kc.leaderURL, "unwrap", []byte(`{"wrapped":"AA=="} {}`), 400, errcode.MalformedRequest},
		{"no body", raw, kc.leaderURL, "datakey", []byte{}, 400, errcode.MalformedRequest},
		{"oversized body", raw, kc.leaderURL, "wrap", []byte(`{"plaintext":"` + strings.Repeat("A", 70<<10) + `"}`), 413, errcode.TooLarge},
		{"empty batch", raw, kc.leaderURL, "wrap/batch", []byte(`{"items":[]}`), 400, errcode.BadRequest},
		{"batch of 1001", raw, kc.leaderURL, "unwrap/batch", client.UnwrapBatchRequest{Items: make([]client.UnwrapItem, 1001)}, 413, errcode.TooLarge},
		{"oversized batch", raw, kc.leaderURL, "wrap/batch", []byte(`{"items":[{"plaintext":"` +
			strings.Repeat("A", int(httpapi.BodyLimits["POST /v1/keks/{id}/wrap/batch"])) + `"}]}`), 413, errcode.TooLarge},
		{"a node", e.as(t, identity.RoleNode, "n1", "DE"), kc.leaderURL, "wrap", client.WrapRequest{Plaintext: dek, Context: hr}, 403, errcode.Forbidden},
		{"a node's batch", e.as(t, identity.RoleNode, "n2", "FR"), kc.followerURL, "unwrap/batch", client.UnwrapBatchRequest{Items: []client.UnwrapItem{{Wrapped: w.Wrapped, Context: hr}}}, 403, errcode.Forbidden},
	} {
		t.Run(tc.what, func(t *testing.T) {
			kek := "payroll"
			switch tc.what {
			case "blob of another kek":
				kek = "other"
			case "unknown kek":
				kek = "nope"
			}
			resp, body := post(t, tc.hc, tc.base, "/v1/keks/"+kek+"/"+tc.path, tc.body)
			wantError(t, resp, body, tc.status, tc.code)
		})
	}
	_, err = agent.Wrap(ctx, "payroll", nil, hr)
	wantCode(t, "SDK wrap of nothing", err, 400, errcode.InvalidPlaintext)
	_, err = agentF.Unwrap(ctx, "other", w.Wrapped, hr)
	wantCode(t, "SDK unwrap with another kek", err, 400, errcode.WrongKEK)
	_, err = e.sdk(t, identity.RoleAgent, "agent-1", "FR", kc.followerURL).DataKey(ctx, "payroll", hr, false)
	wantCode(t, "SDK datakey from FR", err, 403, errcode.RegionDenied)
	if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.LogIndex == 0 {
		t.Errorf("a refusal carries the index of its denied entry: %v", err)
	}
	resp, body = call(t, raw, http.MethodGet, kc.leaderURL+"/v1/keks/payroll/wrap", nil)
	wantError(t, resp, body, 405, errcode.MethodNotAllowed)

	// Rotation, then rewrap of a v1 blob to v2, through the follower.
	kc.execute(t, ceremony.KEKRotate{KEKID: "payroll"})
	rw, err := agentF.Rewrap(ctx, "payroll", w.Wrapped, hr)
	if err != nil || rw.KEKVersion != 2 || rw.LogIndex == 0 {
		t.Fatalf("rewrap: %+v, %v", rw, err)
	}
	if back, err := agent.Unwrap(ctx, "payroll", rw.Wrapped, hr); err != nil || !bytes.Equal(back.Plaintext, dek) {
		t.Fatalf("unwrap of the rewrapped blob: %v", err)
	}
	resp, body = post(t, raw, kc.leaderURL, "/v1/keks/payroll/rewrap", client.RewrapRequest{Wrapped: w.Wrapped, Context: hr})
	if resp.StatusCode != 200 {
		t.Fatalf("raw rewrap: %d %s", resp.StatusCode, body)
	}
	if m := shape(t, "rewrap", body, "wrapped", "kek_version", "log_index"); m["kek_version"] != 2.0 {
		t.Errorf("rewrap answer %s", body)
	}
	if w2, err := agent.Wrap(ctx, "payroll", dek, hr); err != nil || w2.KEKVersion != 2 {
		t.Fatalf("wrap after rotation: %+v, %v", w2, err)
	}

	// A disabled version: 409; a destroyed one: 410.
	kc.execute(t, ceremony.KEKDisable{KEKID: "payroll", Version: 1})
	_, err = agentF.Unwrap(ctx, "payroll", w.Wrapped, hr)
	wantCode(t, "unwrap with a disabled version", err, 409, errcode.KEKDisabled)
	kc.execute(t, ceremony.KEKDestroy{KEKID: "payroll", Version: 1})
	_, err = agent.Unwrap(ctx, "payroll", w.Wrapped, hr)
	wantCode(t, "unwrap with a destroyed version", err, 410, errcode.KEKDestroyed)
	if pk, err := aud.PublicKey(ctx, "payroll", 1); err != nil || pk.State != ledger.KEKDestroyed {
		t.Errorf("public key of a destroyed version: %+v, %v", pk, err)
	}
	kc.execute(t, ceremony.KEKDisable{KEKID: "other", All: true})
	_, err = agent.Wrap(ctx, "other", dek, hr)
	wantCode(t, "wrap with no active version", err, 409, errcode.NoActiveVersion)

	// Metrics: the node's key-op counters.
	resp, body = call(t, e.as(t, identity.RoleOperator, "ops", "DE"), http.MethodGet, kc.followerURL+"/metrics", nil)
	for _, want := range []string{"custos_keyops_denied_total", "custos_kek_activations_total", "custos_kek_cache_hits_total",
		"custos_kek_shares_released_total", "custos_kek_cached_keys", `custos_http_requests_total{code="200",method="POST",route="/v1/keks/{id}/unwrap"}`} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("metrics: no %s", want)
		}
	}
	if strings.Contains(string(body), "custos_kek_activations_total 0") {
		t.Error("the follower's activations were not counted")
	}

	// No data key in the API's logs, which did log the refusals.
	for id, logs := range kc.logs {
		all := logs.String()
		for _, s := range secrets {
			for _, enc := range []string{base64.StdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s), fmt.Sprintf("%x", s)} {
				if strings.Contains(all, enc) {
					t.Errorf("node %s logged a data key: %s", id, logs.Line(enc))
				}
			}
		}
	}
	if l := kc.logs[kc.c.Follower().Info().ID].Line(client.CodeUnwrapFailed); l == "" {
		t.Error("the follower's refusals were not logged")
	}
}

// A Service without key operations answers their routes 501
// not_supported_yet, after the role check.
func TestKeyOpRoutesWithoutKeyOpService(t *testing.T) {
	e := newEnv(t)
	resp, body := post(t, e.agent(t), e.srv.URL, "/v1/keks/payroll/wrap", client.WrapRequest{Plaintext: []byte{1}})
	wantError(t, resp, body, 501, errcode.NotSupportedYet)
	resp, body = call(t, e.auditor(t), http.MethodGet, e.srv.URL+"/v1/keks/payroll/versions/1/public", nil)
	wantError(t, resp, body, 501, errcode.NotSupportedYet)
	resp, body = post(t, e.as(t, identity.RoleNode, "n2", "FR"), e.srv.URL, "/v1/keks/payroll/unwrap", client.UnwrapRequest{})
	wantError(t, resp, body, 403, errcode.Forbidden)
}
