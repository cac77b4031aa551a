package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/ledger"
)

func TestAttestations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.sdk(t, identity.RoleAgent, "backup-1", "FR")
	details := map[string]string{"archive": "a1", "dataset": "hr", "sha256": "sha256:00", "size": "10", "target": "s3-ie",
		"region": "IE", "decision": "encrypted-off-region-allowed"}
	i, err := agent.Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, KEKID: "demo", KEKVersion: 1, Details: details})
	if err != nil {
		t.Fatal(err)
	}
	en, err := e.fake.Entry(i)
	if err != nil || en.Type != client.AttestTransfer || en.Actor.Role != "agent" || en.Details["region"] != "IE" || en.KEKID != "demo" || en.Outcome != ledger.OutcomeOK {
		t.Fatalf("transfer entry %+v, %v", en, err)
	}
	i, err = agent.Attest(ctx, client.AttestRequest{Type: client.AttestDrill, Details: map[string]string{"archive": "a1", "dataset": "hr", "result": "hash mismatch", "restore_seconds": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	if en, _ := e.fake.Entry(i); en.Outcome != ledger.OutcomeError {
		t.Errorf("a failed drill is logged %s, want error", en.Outcome)
	}
	_, err = agent.Attest(ctx, client.AttestRequest{Type: "kek.unwrap", Details: details})
	wantCode(t, "unknown type", err, 400, errcode.BadRequest)
	_, err = agent.Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, Details: map[string]string{"archive": "a1"}})
	wantCode(t, "missing details", err, 400, errcode.BadRequest)
	_, err = e.sdk(t, identity.RoleAuditor, "audit", "FR").Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, Details: details})
	wantCode(t, "auditor", err, 403, errcode.Forbidden)
}

// GET /v1/attestations/drills against two real nodes: the newest drill of
// each dataset (whatever its result), from the leader and from a follower's
// committed state, for every reader role; node certificates are refused.
func TestDrills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-node cluster")
	}
	if ledger.TypeDrill != client.AttestDrill {
		t.Fatalf("keysvc indexes %q, agents attest %q", ledger.TypeDrill, client.AttestDrill)
	}
	env := agentcluster.New(t)
	ctx := context.Background()
	agent := env.Client(t, identity.RoleAgent, "backup-1")
	pinned := func(role identity.Role, name, url string) *client.Client {
		c, err := client.New(client.Config{Endpoints: []string{url}, TLSFiles: env.PKI.Issue(t, role, name, "DE"), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	if ds, err := agent.Drills(ctx, ""); err != nil || len(ds) != 0 {
		t.Fatalf("drills before any: %+v, %v", ds, err)
	}
	drill := func(dataset, archive, result string) uint64 {
		t.Helper()
		i, err := agent.Attest(ctx, client.AttestRequest{Type: client.AttestDrill,
			Details: map[string]string{"archive": archive, "dataset": dataset, "result": result, "restore_seconds": "3"}})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	hr1 := drill("hr", "hr-1", "ok")
	crm := drill("crm", "crm-1", "ok")
	// Another attestation of hr in between is not a drill.
	if _, err := agent.Attest(ctx, client.AttestRequest{Type: client.AttestTransfer, Details: map[string]string{"archive": "hr-2", "dataset": "hr",
		"sha256": "00", "size": "1", "target": "paris", "region": "FR", "decision": "in-region"}}); err != nil {
		t.Fatal(err)
	}
	hr2 := drill("hr", "hr-2", "hash mismatch") // newer, failed: it is the one reported
	if hr2 <= hr1 {
		t.Fatalf("drill indexes %d then %d", hr1, hr2)
	}
	env.Cluster.WaitConverged()

	want := []struct {
		dataset, archive string
		index            uint64
		outcome          ledger.Outcome
	}{{"crm", "crm-1", crm, ledger.OutcomeOK}, {"hr", "hr-2", hr2, ledger.OutcomeError}}
	roles := []identity.Role{identity.RoleAgent, identity.RoleOperator, identity.RoleAuditor, identity.RoleOfficer}
	for i, url := range env.URLs { // leader, then follower
		for _, role := range roles {
			c := pinned(role, "reader", url)
			ds, err := c.Drills(ctx, "")
			if err != nil || len(ds) != len(want) {
				t.Fatalf("%s on node %d: %+v, %v", role, i, ds, err)
			}
			for j, w := range want {
				d := ds[j]
				if d.Dataset != w.dataset || d.LogIndex != w.index || d.Entry.Index != w.index || d.Entry.Details["archive"] != w.archive ||
					d.Entry.Outcome != w.outcome || d.Entry.Actor.Role != "agent" || len(d.Raw) == 0 {
					t.Errorf("%s on node %d: drill %d: %+v", role, i, j, d)
				}
			}
			one, err := c.Drills(ctx, "hr")
			if err != nil || len(one) != 1 || one[0].LogIndex != hr2 {
				t.Errorf("%s on node %d: ?dataset=hr: %+v, %v", role, i, one, err)
			}
			none, err := c.Drills(ctx, "payroll")
			if err != nil || len(none) != 0 {
				t.Errorf("%s on node %d: ?dataset=payroll: %+v, %v", role, i, none, err)
			}
		}
		_, err := pinned(identity.RoleNode, "n2", url).Drills(ctx, "")
		wantCode(t, "node certificate", err, 403, errcode.Forbidden)
	}

	// The wire form: sorted records with the entry's canonical bytes in base64.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: env.PKI.ClientTLS(t, env.PKI.Issue(t, identity.RoleAgent, "backup-1", "DE"))}, Timeout: 10 * time.Second}
	resp, body := call(t, hc, http.MethodGet, env.URLs[0]+"/v1/attestations/drills?dataset=crm", nil)
	var wire struct {
		Drills []map[string]any `json:"drills"`
	}
	if err := json.Unmarshal(body, &wire); resp.StatusCode != 200 || err != nil || len(wire.Drills) != 1 {
		t.Fatalf("wire: %d %s", resp.StatusCode, body)
	}
	raw, err := base64.StdEncoding.DecodeString(fmt.Sprint(wire.Drills[0]["entry"]))
	if en, perr := ledger.ParseEntry(raw); err != nil || perr != nil || wire.Drills[0]["dataset"] != "crm" ||
		wire.Drills[0]["log_index"] != float64(crm) || en.Index != crm || len(wire.Drills[0]) != 3 {
		t.Errorf("wire record %s: %v %v", body, err, perr)
	}
	resp, body = call(t, hc, http.MethodGet, env.URLs[0]+"/v1/attestations/drills?dataset=", nil)
	wantError(t, resp, body, 400, errcode.BadRequest)
}

// The client checks what it is given: each record's entry must be a drill
// of that dataset at that log index.
func TestDrillsClientChecks(t *testing.T) {
	pki := httpapitest.NewPKI(t, "test")
	entry := func(typ, dataset string, index uint64) []byte {
		b, err := ledger.Entry{Index: index, Time: time.Unix(1e9, 0), Type: typ, Actor: ledger.Actor{Identity: "a"}, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"archive": "x", "dataset": dataset, "result": "ok", "restore_seconds": "1"}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec := func(dataset string, index uint64, entry []byte) client.DrillRecord {
		return client.DrillRecord{Dataset: dataset, LogIndex: index, Entry: entry}
	}
	for _, tc := range []struct {
		name    string
		records []client.DrillRecord
		dataset string
		ok      bool
	}{
		{"good", []client.DrillRecord{rec("crm", 4, entry(client.AttestDrill, "crm", 4)), rec("hr", 7, entry(client.AttestDrill, "hr", 7))}, "", true},
		{"unsorted", []client.DrillRecord{rec("hr", 7, entry(client.AttestDrill, "hr", 7)), rec("crm", 4, entry(client.AttestDrill, "crm", 4))}, "", false},
		{"not a drill", []client.DrillRecord{rec("hr", 7, entry(client.AttestTransfer, "hr", 7))}, "", false},
		{"other index", []client.DrillRecord{rec("hr", 7, entry(client.AttestDrill, "hr", 8))}, "", false},
		{"other dataset", []client.DrillRecord{rec("hr", 7, entry(client.AttestDrill, "crm", 7))}, "", false},
		{"not asked for", []client.DrillRecord{rec("crm", 4, entry(client.AttestDrill, "crm", 4))}, "hr", false},
		{"garbage", []client.DrillRecord{rec("hr", 7, []byte(`{"index":7}`))}, "", false},
	} {
		srv := pki.Serve(t, "n1", "DE", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(client.Drills{Drills: tc.records})
		}))
		c, err := client.New(client.Config{Endpoints: []string{srv.URL}, TLSFiles: pki.Issue(t, identity.RoleAgent, "a", "DE"), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := c.Drills(context.Background(), tc.dataset)
		if (err == nil) != tc.ok || (tc.ok && len(ds) != len(tc.records)) {
			t.Errorf("%s: %+v, %v", tc.name, ds, err)
		}
		c.Close()
	}
}

// A Service that keeps no drill index answers 501 after the role check.
func TestDrillsWithoutDrillService(t *testing.T) {
	e := newEnv(t)
	_, err := e.sdk(t, identity.RoleAuditor, "audit", "NL").Drills(context.Background(), "")
	wantCode(t, "fake service", err, 501, errcode.NotSupportedYet)
	_, err = e.sdk(t, identity.RoleNode, "n2", "FR").Drills(context.Background(), "")
	wantCode(t, "node", err, 403, errcode.Forbidden)
}
