package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
)

// recorder answers each request with the canned answer for its path and
// records what it received.
type recorder struct {
	mu      sync.Mutex
	answers map[string]string // "METHOD path" -> JSON answer (200)
	got     map[string][]byte // "METHOD path" -> body received
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.EscapedPath()
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.got[key] = b
	ans, ok := rec.answers[key]
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"code":"region_denied","message":"not from FR","request_id":"r1"}}`)
		return
	}
	_, _ = io.WriteString(w, ans)
}

// Each key operation posts its wire body to its route and decodes the
// answer; refusals are *APIError, failed batch items *ItemError.
func TestKeyOps(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	rec := &recorder{got: map[string][]byte{}, answers: map[string]string{
		"POST /v1/keks/payroll/wrap":             `{"wrapped":"AQID","kek_version":2,"log_index":10}`,
		"POST /v1/keks/payroll/unwrap":           `{"plaintext":"BAU=","log_index":11}`,
		"POST /v1/keks/payroll/datakey":          `{"plaintext":"BgcI","wrapped":"CQ==","kek_version":2,"log_index":12}`,
		"POST /v1/keks/payroll/rewrap":           `{"wrapped":"Cgs=","kek_version":3,"log_index":13}`,
		"POST /v1/keks/payroll/wrap/batch":       `{"results":[{"wrapped":"AQ==","kek_version":1,"log_index":14},{"error":{"code":"context_missing","message":"dataset","log_index":14}}]}`,
		"POST /v1/keks/payroll/unwrap/batch":     `{"results":[{"error":{"code":"unwrap_failed","message":"no"}},{"plaintext":"Ag==","log_index":15}]}`,
		"GET /v1/keks/payroll/versions/2/public": `{"kek_id":"payroll","kek_version":2,"public_key":"AwQ=","state":"active","log_index":7}`,
	}}
	url := pki.Serve(t, "n1", "DE", rec).URL
	c := newClient(t, pki, identity.RoleAgent, url)
	ctx := context.Background()
	hr := map[string]string{"dataset": "hr"}
	sent := func(key string) map[string]any {
		t.Helper()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var m map[string]any
		if err := json.Unmarshal(rec.got[key], &m); err != nil {
			t.Fatalf("%s: body %q: %v", key, rec.got[key], err)
		}
		return m
	}

	w, err := c.Wrap(ctx, "payroll", []byte{1, 2, 3}, hr)
	if err != nil || !bytes.Equal(w.Wrapped, []byte{1, 2, 3}) || w.KEKVersion != 2 || w.LogIndex != 10 {
		t.Errorf("wrap: %+v, %v", w, err)
	}
	if m := sent("POST /v1/keks/payroll/wrap"); m["plaintext"] != "AQID" || m["context"].(map[string]any)["dataset"] != "hr" || len(m) != 2 {
		t.Errorf("wrap sent %v", m)
	}
	u, err := c.Unwrap(ctx, "payroll", []byte{1}, hr)
	if err != nil || !bytes.Equal(u.Plaintext, []byte{4, 5}) || u.LogIndex != 11 {
		t.Errorf("unwrap: %+v, %v", u, err)
	}
	if m := sent("POST /v1/keks/payroll/unwrap"); m["wrapped"] != "AQ==" || len(m) != 2 {
		t.Errorf("unwrap sent %v", m)
	}
	dk, err := c.DataKey(ctx, "payroll", hr, false)
	if err != nil || !bytes.Equal(dk.Plaintext, []byte{6, 7, 8}) || !bytes.Equal(dk.Wrapped, []byte{9}) || dk.LogIndex != 12 {
		t.Errorf("datakey: %+v, %v", dk, err)
	}
	if m := sent("POST /v1/keks/payroll/datakey"); m["wrapped_only"] != false || len(m) != 2 {
		t.Errorf("datakey sent %v", m)
	}
	dk, err = c.DataKey(ctx, "payroll", nil, true)
	if err != nil || dk.LogIndex != 12 {
		t.Errorf("wrapped-only datakey: %+v, %v", dk, err)
	}
	if m := sent("POST /v1/keks/payroll/datakey"); m["wrapped_only"] != true {
		t.Errorf("datakey sent %v", m)
	}
	// A KEK id no request can name is refused before anything is sent:
	// it cannot be signed.
	if _, err := c.DataKey(ctx, "odd/id", nil, true); err == nil || !strings.Contains(err.Error(), "kek") {
		t.Errorf("datakey with kek id odd/id: %v", err)
	}
	rec.mu.Lock()
	_, odd := rec.got["POST /v1/keks/odd%2Fid/datakey"]
	rec.mu.Unlock()
	if odd {
		t.Error("a request with an unsignable kek id was sent")
	}
	rw, err := c.Rewrap(ctx, "payroll", []byte{1}, hr)
	if err != nil || rw.KEKVersion != 3 || rw.LogIndex != 13 {
		t.Errorf("rewrap: %+v, %v", rw, err)
	}
	wb, err := c.WrapBatch(ctx, "payroll", []client.WrapItem{{Plaintext: []byte{1}, Context: hr}, {Plaintext: []byte{2}}})
	if err != nil || len(wb.Results) != 2 || wb.Results[0].Err() != nil || wb.Results[0].LogIndex != 14 {
		t.Fatalf("wrap batch: %+v, %v", wb, err)
	}
	var ie *client.ItemError
	if err := wb.Results[1].Err(); !errors.As(err, &ie) || ie.Code != client.CodeContextMissing || ie.LogIndex != 14 {
		t.Errorf("wrap batch item 1: %v", err)
	}
	if m := sent("POST /v1/keks/payroll/wrap/batch"); len(m["items"].([]any)) != 2 {
		t.Errorf("wrap batch sent %v", m)
	}
	ub, err := c.UnwrapBatch(ctx, "payroll", []client.UnwrapItem{{Wrapped: []byte{1}}, {Wrapped: []byte{2}}})
	if err != nil || len(ub.Results) != 2 || ub.Results[0].Err() == nil || ub.Results[0].Error.LogIndex != 0 || !bytes.Equal(ub.Results[1].Plaintext, []byte{2}) {
		t.Fatalf("unwrap batch: %+v, %v", ub, err)
	}
	pk, err := c.PublicKey(ctx, "payroll", 2)
	if err != nil || pk.KEKID != "payroll" || pk.KEKVersion != 2 || !bytes.Equal(pk.PublicKey, []byte{3, 4}) || pk.State != "active" || pk.LogIndex != 7 {
		t.Errorf("public key: %+v, %v", pk, err)
	}

	_, err = c.Wrap(ctx, "other", []byte{1}, hr)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != client.CodeRegionDenied || ae.RequestID != "r1" {
		t.Errorf("refusal: %v", err)
	}
}
