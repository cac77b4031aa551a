package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer/officertest"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// limitFake serves every route and accepts whatever reaches it, so that
// a body's fate is the API's alone.
type limitFake struct{ *signFake }

func (limitFake) Init(context.Context, state.Init, ledger.Actor) error { return nil }
func (limitFake) Propose(context.Context, []byte, string, []byte, ledger.Actor) (state.Ceremony, error) {
	return state.Ceremony{ID: "0123456789abcdef0123456789abcdef", Status: state.StatusPending}, nil
}
func (limitFake) Approve(_ context.Context, id, _ string, _ []byte, _ ledger.Actor) (state.Ceremony, error) {
	return state.Ceremony{ID: id, Status: state.StatusPending}, nil
}
func (limitFake) Initialized() (bool, error)            { return true, nil }
func (limitFake) Ceremonies() ([]state.Ceremony, error) { return nil, nil }
func (limitFake) Ceremony(string) (state.Ceremony, bool, error) {
	return state.Ceremony{}, false, nil
}
func (limitFake) Officers() ([]state.Officer, error)                    { return nil, nil }
func (limitFake) KEKs() ([]state.KEK, error)                            { return nil, nil }
func (limitFake) KEK(string) (state.KEK, bool, error)                   { return state.KEK{}, false, nil }
func (limitFake) HoldEscrowShare(string, string, []byte) error          { return nil }
func (limitFake) Drills(context.Context, string) ([]state.Drill, error) { return nil, nil }
func (limitFake) DestructionCertificate(string, uint32) (keysvc.DestructionCertificate, error) {
	return keysvc.DestructionCertificate{}, keysvc.ErrUnknownKEK
}

var (
	_ httpapi.CeremonyService = limitFake{}
	_ httpapi.KEKService      = limitFake{}
	_ httpapi.DrillService    = limitFake{}
)

// Names at their longest: a node, an officer, a KEK id.
var (
	longName = "n" + strings.Repeat("0", identity.MaxNameLen-2) + "1"
	longKEK  = strings.Repeat("k", wrapkey.MaxKEKIDLen)
)

// maxContext is a context that takes about as many JSON bytes as a valid
// one can: four entries (the most that can all be at their longest) whose
// keys and values fill wrapkey.MaxContextSize with bytes encoding/json
// writes as \u00XX.
func maxContext(t *testing.T) map[string]string {
	t.Helper()
	const n = 4
	text := wrapkey.MaxContextSize - 2 - 4*n - n*wrapkey.MaxContextKeyLen // bytes left for the values
	c := map[string]string{}
	for i := range n {
		k := strings.Repeat("<", wrapkey.MaxContextKeyLen-1) + string(">&\x01\x02"[i])
		v := strings.Repeat("&", text/n)
		if i < text%n {
			v += "\x1f"
		}
		c[k] = v
	}
	if err := wrapkey.Context(c).Validate(); err != nil {
		t.Fatal(err)
	}
	if canon, _ := wrapkey.Context(c).Canonical(); len(canon) != wrapkey.MaxContextSize {
		t.Fatalf("context of %d bytes, want %d", len(canon), wrapkey.MaxContextSize)
	}
	return c
}

// maxBlob is a blob of the largest size under KEK longKEK and context c.
func maxBlob(t *testing.T, c map[string]string) []byte {
	t.Helper()
	seed := make([]byte, wrapkey.SeedSize)
	rand.Read(seed)
	pub, err := wrapkey.PublicKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := wrapkey.Wrap(rand.Reader, pub, longKEK, math.MaxUint32, c, make([]byte, wrapkey.MaxDEKSize))
	if err != nil || len(blob) != wrapkey.MaxBlobSize {
		t.Fatalf("blob of %d bytes (want %d): %v", len(blob), wrapkey.MaxBlobSize, err)
	}
	return blob
}

// maxNodeInfo is the description of node longName at its longest: the
// longest addresses, and its two key lines padded by a comment line to
// ceremony.MaxNodeKeysLen, each in characters JSON escapes where the rules
// allow them.
func maxNodeInfo(t *testing.T) client.NodeInfo {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ml, _, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ledger.NodeKey{Name: ledger.KeyName("test", longName), ECDSA: &ec.PublicKey, MLDSA: ml}.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	comment := "#" + strings.Repeat("<", ceremony.MaxNodeKeysLen-len(keys)-2) + "\n"
	kem := make([]byte, wrapkey.PublicKeySize)
	rand.Read(kem)
	api := "https://" + strings.Repeat("a", state.MaxAddrLen-len("https://")-len(".eu:8200")) + ".eu:8200"
	info := client.NodeInfo{ID: longName, Region: "DE", RaftAddr: strings.Repeat("<", state.MaxAddrLen), APIAddr: api,
		Keys: comment + string(keys), KEM: base64.StdEncoding.EncodeToString(kem), Cert: "sha256:" + strings.Repeat("ab", 32)}
	if len(info.Keys) != ceremony.MaxNodeKeysLen || len(info.APIAddr) != state.MaxAddrLen {
		t.Fatalf("keys of %d bytes, api address of %d", len(info.Keys), len(info.APIAddr))
	}
	return info
}

// maxAttestation is a transfer attestation of KEK longKEK whose entry is
// within a few hundred bytes of ledger.MaxEntrySize, all of its details
// in characters encoding/json escapes.
func maxAttestation(t *testing.T) client.AttestRequest {
	t.Helper()
	req := client.AttestRequest{Type: client.AttestTransfer, KEKID: longKEK, KEKVersion: math.MaxUint32, Details: map[string]string{}}
	// What the API adds to the entry: actor, node, request id, time.
	actor := ledger.Actor{Identity: identity.Identity{Cluster: "test", Name: "agent-1", Role: identity.RoleAgent, Region: "DE"}.String(),
		Role: "agent", Region: "DE", CertFingerprint: "sha256:" + strings.Repeat("ab", 32)}
	size := func() int {
		b, err := ledger.Entry{Time: time.Now(), Type: req.Type, Actor: actor, Node: "n1", KEKID: req.KEKID, KEKVersion: req.KEKVersion,
			RequestID: strings.Repeat("0", 32), Outcome: ledger.OutcomeOK, Details: req.Details}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	const room = ledger.MaxEntrySize - 256 // for the actual actor's and time's lengths
	for i := range ledger.MaxDetails {
		k := fmt.Sprintf("%02d", i) + strings.Repeat("k", 62)
		if i < 7 {
			k = []string{"archive", "dataset", "sha256", "size", "target", "region", "decision"}[i]
		}
		if size()+len(`,"":"<"`)+len(k) > room {
			break
		}
		req.Details[k] = "<"
		req.Details[k] += strings.Repeat("<", min(room-size(), ledger.MaxFieldLen-1))
	}
	if s := size(); s > room || s < room-len(`,"":"<"`)-64 {
		t.Fatalf("entry of %d bytes", s)
	}
	return req
}

// postRaw posts body as it is, with signature header h (none when "").
func postRaw(t *testing.T, hc *http.Client, url string, body []byte, h string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h != "" {
		req.Header.Set(reqsig.Header, h)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// TestBodyLimits: every route that takes a body accepts the largest valid
// body it can be sent, as encoding/json (and so the SDK) writes it, and
// refuses a body one byte over its limit with 413 too_large. Bodies are
// padded with spaces to the limit exactly. Where keysvc, not the API,
// decides what is valid (proposals, officer signatures), the body carries
// the longest value keysvc accepts the length of, in the characters that
// take the most JSON bytes.
func TestBodyLimits(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	f := limitFake{&signFake{Fake: httpapitest.NewFake(pki.Cluster, "n1", "DE", "")}}
	e := &env{pki: pki, fake: f.Fake, logs: &testlog.Buffer{}}
	e.srv = pki.Serve(t, "n1", "DE", httpapi.New(f, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	f.SetAPIAddr(e.srv.URL)
	agent := e.signed(t, identity.RoleAgent, "agent-1", "DE")
	// Batches go unsigned (wrap) or signed here from their items (unwrap):
	// the signing transport would read them again.
	files := pki.Issue(t, identity.RoleAgent, "agent-2", "DE")
	batcher := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(t, files)}, Timeout: 2 * time.Minute}

	ctx := maxContext(t)
	dek := make([]byte, wrapkey.MaxDEKSize)
	blob := maxBlob(t, ctx)
	share := make([]byte, threshold.ShareLen)
	offs := officertest.New(t)
	var bundles []string
	for i := range state.MaxInitOfficers {
		bundles = append(bundles, offs.Bundle(fmt.Sprintf("%02d", i)+longName[2:]))
	}
	wrapItems := make([]client.WrapItem, keysvc.MaxBatchItems)
	unwrapItems := make([]client.UnwrapItem, keysvc.MaxBatchItems)
	for i := range wrapItems {
		wrapItems[i] = client.WrapItem{Plaintext: dek, Context: ctx}
		unwrapItems[i] = client.UnwrapItem{Wrapped: blob, Context: ctx}
	}
	batch := make([]reqsig.Item, len(unwrapItems))
	for i, it := range unwrapItems {
		ch, err := reqsig.ContextHash(wrapkey.Context(it.Context))
		if err != nil {
			t.Fatal(err)
		}
		batch[i] = reqsig.Item{Body: reqsig.BodyHash(it.Wrapped), Context: ch}
	}
	empty, _ := reqsig.ContextHash(nil)
	unwrapBatchSig := signHeader(t, keyOfFiles(t, files), reqsig.Request{Cluster: "test", KEKID: longKEK, Op: reqsig.OpUnwrapBatch,
		Body: reqsig.BatchHash(batch), Context: empty})

	if client.MaxBatchItems != keysvc.MaxBatchItems {
		t.Errorf("the SDK batches %d items, the API takes %d", client.MaxBatchItems, keysvc.MaxBatchItems)
	}
	// The OpenAPI document states the limits of its routes.
	doc := strings.Join(strings.Fields(string(httpapi.OpenAPI())), " ")
	for name, route := range map[string]string{"wrap": "wrap", "unwrap and rewrap": "unwrap", "datakey": "datakey",
		"wrap batch": "wrap/batch", "unwrap batch": "unwrap/batch"} {
		want := fmt.Sprintf("%s %d", name, httpapi.BodyLimits["POST /v1/keks/{id}/"+route])
		if !strings.Contains(doc, want) {
			t.Errorf("openapi.yaml does not say %q", want)
		}
	}
	if want := fmt.Sprintf("attestations %d", httpapi.BodyLimits["POST /v1/attestations"]); !strings.Contains(doc, want) {
		t.Errorf("openapi.yaml does not say %q", want)
	}

	kek := "/v1/keks/" + longKEK
	var tested []string
	for _, tc := range []struct {
		route  string // method and pattern, as in httpapi.BodyLimits
		hc     *http.Client
		path   string
		body   any
		header string // Custos-Request-Signature, if any
	}{
		{"POST /v1/sys/canary", e.operator(t), "/v1/sys/canary", struct{}{}, ""},
		{"POST /v1/sys/join", e.as(t, identity.RoleNode, longName, "DE"), "/v1/sys/join", maxNodeInfo(t), ""},
		{"POST /v1/sys/init", e.operator(t), "/v1/sys/init", client.InitRequest{Officers: bundles, Quorum: state.MaxInitOfficers,
			DefaultThreshold: 64, Regions: identity.EUEEARegions()}, ""},
		{"POST /v1/ceremonies", e.as(t, identity.RoleOfficer, longName, "DE"), "/v1/ceremonies", client.ProposeRequest{
			Proposal: strings.Repeat("<", ceremony.MaxProposalSize), Signature: strings.Repeat(`"`, ceremony.MaxSignatureSize), EscrowShare: share}, ""},
		{"POST /v1/ceremonies/{id}/approvals", e.as(t, identity.RoleOfficer, longName, "DE"), "/v1/ceremonies/0123456789abcdef0123456789abcdef/approvals",
			client.ApproveRequest{Officer: longName, Signature: strings.Repeat(`"`, ceremony.MaxSignatureSize), EscrowShare: share}, ""},
		{"POST /v1/attestations", e.agent(t), "/v1/attestations", maxAttestation(t), ""},
		{"POST /v1/keks/{id}/wrap", agent, kek + "/wrap", client.WrapRequest{Plaintext: dek, Context: ctx}, ""},
		{"POST /v1/keks/{id}/unwrap", agent, kek + "/unwrap", client.UnwrapRequest{Wrapped: blob, Context: ctx}, ""},
		{"POST /v1/keks/{id}/datakey", agent, kek + "/datakey", client.DataKeyRequest{Context: ctx, WrappedOnly: true}, ""},
		{"POST /v1/keks/{id}/rewrap", agent, kek + "/rewrap", client.RewrapRequest{Wrapped: blob, Context: ctx}, ""},
		{"POST /v1/keks/{id}/wrap/batch", batcher, kek + "/wrap/batch", client.WrapBatchRequest{Items: wrapItems}, ""},
		{"POST /v1/keks/{id}/unwrap/batch", batcher, kek + "/unwrap/batch", client.UnwrapBatchRequest{Items: unwrapItems}, unwrapBatchSig},
	} {
		tested = append(tested, tc.route)
		t.Run(tc.route, func(t *testing.T) {
			limit, ok := httpapi.BodyLimits[tc.route]
			if !ok {
				t.Fatal("no limit")
			}
			body, err := json.Marshal(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(body)) > limit {
				t.Fatalf("largest valid body %d bytes, over the limit %d", len(body), limit)
			}
			t.Logf("largest body %d bytes, limit %d", len(body), limit)
			padded := append(body, bytes.Repeat([]byte(" "), int(limit)+1-len(body))...)
			resp, rb := postRaw(t, tc.hc, e.srv.URL+tc.path, padded[:limit], tc.header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("at the limit: %d %.300s", resp.StatusCode, rb)
			}
			resp, rb = postRaw(t, tc.hc, e.srv.URL+tc.path, padded, tc.header)
			wantError(t, resp, rb, http.StatusRequestEntityTooLarge, errcode.TooLarge)
		})
	}
	if len(tested) != len(httpapi.BodyLimits) {
		t.Errorf("tested %v, limits for %d routes", tested, len(httpapi.BodyLimits))
	}
}
