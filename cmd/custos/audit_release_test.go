package main

// Activations and share releases in watch and the custody report.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/reqsig"
)

// testClient is an agent's certificate and key in the fake log's cluster.
type testClient struct {
	id   identity.Identity
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestClient(t *testing.T, cluster, name string) *testClient {
	t.Helper()
	ca, err := identity.NewCA(cluster, 2*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Cluster: cluster, Name: name, Role: identity.RoleAgent, Region: "DE"}
	certPEM, keyPEM, err := ca.Issue(id, identity.IssueOptions{NotBefore: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{id: id, cert: pair.Leaf, key: pair.PrivateKey.(crypto.Signer)}
}

// activate appends a kek.activate of kek "backups" v1 served by n1 for c's
// signed unwrap request, and returns its index and request id.
func (f *fakeLog) activate(t *testing.T, c *testClient) (uint64, string) {
	t.Helper()
	i := uint64(len(f.entries))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second) // as add stamps it
	req := reqsig.Request{Cluster: f.cluster, Op: reqsig.OpUnwrap, KEKID: "backups", Version: 1, Body: reqsig.BodyHash([]byte("blob")),
		RequestID: reqsig.NewRequestID(), Time: at.Unix()}
	msg, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := reqsig.Sign(c.key, msg)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	f.add(t, ledger.Entry{Type: ledger.TypeActivate,
		Actor: ledger.Actor{Identity: c.id.String(), Role: string(c.id.Role), Region: c.id.Region, CertFingerprint: identity.Fingerprint(c.cert)},
		Node:  "n1", KEKID: "backups", KEKVersion: 1, RequestID: req.RequestID, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"request": b64(msg), "signature": b64(sig), "client_cert": b64(c.cert.Raw), "ttl_seconds": "60"}})
	return i, req.RequestID
}

// release appends node's kek.release to n1 for activation act ("" for none).
func (f *fakeLog) release(t *testing.T, node, act, requestID string, c *testClient) uint64 {
	t.Helper()
	d := map[string]string{"to": "n1", "for": c.id.String()}
	if act != "" {
		d["activation"] = act
	}
	f.add(t, ledger.Entry{Type: ledger.TypeRelease, Actor: ledger.Actor{Identity: "custos://" + f.cluster + "/node/" + node + "?region=DE", Role: "node", Region: "DE"},
		Node: node, KEKID: "backups", KEKVersion: 1, RequestID: requestID, Outcome: ledger.OutcomeOK, Details: d})
	return uint64(len(f.entries) - 1)
}

// Entries and InclusionProof make a fakeSource a logSource.
func (s *fakeSource) Entries(_ context.Context, start uint64, limit int) ([][]byte, error) {
	end := min(start+uint64(limit), uint64(len(s.entries)))
	if start >= end {
		return nil, nil
	}
	out := slices.Clone(s.entries[start:end])
	for i := range out {
		if d, ok := s.doctored[start+uint64(i)]; ok {
			out[i] = d
		}
	}
	return out, nil
}

func (s *fakeSource) InclusionProof(_ context.Context, index, size uint64) (ledger.InclusionProof, error) {
	p, err := tlog.ProveRecord(int64(size), int64(index), tlog.HashReaderFunc(s.read))
	return ledger.InclusionProof{Index: index, Size: size, Hashes: p}, err
}

func num(i uint64) string { return strconv.FormatUint(i, 10) }

func TestAuditWatchReleases(t *testing.T) {
	c := newTestClient(t, "test", "backup")
	for _, tc := range []struct {
		name  string
		build func(f *fakeLog) // entries after the pin
		alert []string         // "" if the poll passes
	}{
		{"valid", func(f *fakeLog) {
			a, req := f.activate(t, c)
			f.release(t, "n2", num(a), req, c)
			f.release(t, "n3", num(a), req, c)
		}, nil},
		{"no activation", func(f *fakeLog) {
			a, req := f.activate(t, c)
			f.release(t, "n2", num(a), req, c)
			f.release(t, "n3", "", req, c)
		}, []string{"ALERT: release_without_activation: entry 8: node n3 released its share of kek backups v1 to node n1"}},
		{"twice by one peer", func(f *fakeLog) {
			a, req := f.activate(t, c)
			f.release(t, "n2", num(a), req, c)
			f.release(t, "n2", num(a), req, c)
			f.release(t, "n1", num(a), req, c)
		}, []string{"ALERT: release_duplicate: entry 8:", "ALERT: release_to_self: entry 9:"}},
		{"names a non-activation before the pin", func(f *fakeLog) {
			f.release(t, "n2", "2", "req-00000001", c)
		}, []string{"ALERT: release_activation_not_found: entry 6: node n2 released its share of kek backups v1 to node n1 naming entry 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLog(t, "test", 6)
			tc.build(f)
			path := filepath.Join(t.TempDir(), "trust.json")
			if err := os.WriteFile(path, f.trust(t, 6), 0o644); err != nil {
				t.Fatal(err)
			}
			var logged, out bytes.Buffer
			w, err := newWatcher(&fakeSource{fakeLog: f, note: f.checkpoint(t, len(f.entries), nil)}, path, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			err = watchLoop(context.Background(), w, &out, time.Second, true)
			if tc.alert == nil {
				if err != nil || strings.Contains(out.String(), "ALERT") {
					t.Fatalf("poll: %v\n%s%s", err, out.String(), logged.String())
				}
			} else {
				if err == nil {
					t.Fatalf("poll passed; want %q\n%s", tc.alert, logged.String())
				}
				wantAll(t, "watch", out.String(), tc.alert...)
				for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
					if !strings.HasPrefix(l, "ALERT: ") {
						t.Errorf("output line %q is not an ALERT line", l)
					}
				}
			}
			// The log only grew: the pin moves either way.
			if got := readPin(t, path).Size; got != uint64(len(f.entries)) {
				t.Errorf("pin at %d after the poll, want %d", got, len(f.entries))
			}
		})
	}
}

func TestAuditWatchReleaseAcrossPin(t *testing.T) {
	// The activation is before the pin, its releases after: watch fetches
	// it, with its inclusion proof, to check them.
	c := newTestClient(t, "test", "backup")
	f := newFakeLog(t, "test", 4)
	a, req := f.activate(t, c)
	pin := len(f.entries)
	f.release(t, "n2", num(a), req, c)
	f.release(t, "n3", num(a), req, c)
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, f.trust(t, pin), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged, out bytes.Buffer
	src := &fakeSource{fakeLog: f, note: f.checkpoint(t, len(f.entries), nil)}
	w, err := newWatcher(src, path, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := watchLoop(context.Background(), w, &out, time.Second, true); err != nil {
		t.Fatalf("poll: %v\n%s", err, out.String())
	}
	if got := w.releases.Counts(); got.Releases != 2 || got.Activations != 1 {
		t.Errorf("releases %+v, want the activation fetched and 2 releases checked", got)
	}
	// The next poll keeps what it followed: a release without activation
	// is now a finding.
	f.release(t, "n2", "", req, c)
	src.note = f.checkpoint(t, len(f.entries), nil)
	out.Reset()
	if err := watchLoop(context.Background(), w, &out, time.Second, true); err == nil {
		t.Fatal("a release without activation passed")
	}
	wantAll(t, "watch", out.String(), "ALERT: release_without_activation: entry 7")
}

func TestReportReleases(t *testing.T) {
	c := newTestClient(t, "test", "backup")
	f := newFakeLog(t, "test", 3)
	a, req := f.activate(t, c)
	f.release(t, "n2", num(a), req, c)
	f.release(t, "n3", num(a), req, c)
	f.release(t, "n3", "", req, c) // no activation
	r := &custodyReport{Pack: "p.jsonl"}
	b := newReportBuilder(r)
	b.followReleases(audit.Header{Cluster: "test"}, nil)
	for _, raw := range f.entries {
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.entry(e); err != nil {
			t.Fatal(err)
		}
	}
	b.finish()
	if r.ActivationTotal != 1 || len(r.Activations) != 1 || r.FlagTotal != 1 {
		t.Fatalf("activations %d, flags %d (%+v)", r.ActivationTotal, r.FlagTotal, r.ReleaseFlags)
	}
	act := r.Activations[0]
	if act.Index != a || act.Client != c.id.String() || act.KEK != "backups v1" || act.Node != "n1" ||
		strings.Join(act.Releasers, ", ") != "n2 (entry 4), n3 (entry 5)" {
		t.Errorf("activation row %+v", act)
	}
	if fl := r.ReleaseFlags[0]; fl.Index != 6 || fl.Code != audit.CodeReleaseNoActivation || fl.Node != "n3" || fl.To != "n1" {
		t.Errorf("flag %+v", fl)
	}
	var htm, md bytes.Buffer
	if err := r.writeHTML(&htm); err != nil {
		t.Fatal(err)
	}
	if err := r.writeMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	wantAll(t, "Markdown", md.String(), "## Activations and share releases", "**1 flagged.**", `release\_without\_activation`,
		"| 3 |", "custos://test/agent/backup?region=DE", "n2 (entry 4), n3 (entry 5)", "| KEK activations | 1 |")
	wantAll(t, "HTML", htm.String(), "<h2>Activations and share releases</h2>", "1 flagged.", "release_without_activation", "n2 (entry 4), n3 (entry 5)")

	// A log of the earlier format: flagged as unbound, not as a finding.
	f = newFakeLog(t, "test", 2)
	f.release(t, "n2", "", "", c)
	f.add(t, ledger.Entry{Type: ledger.TypeActivate, Actor: ledger.Actor{Identity: "custos://test/node/n1?region=DE", Role: "node", Region: "DE"},
		Node: "n1", KEKID: "backups", KEKVersion: 1, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"shares_from": "n2", "ttl_seconds": "0", "for": c.id.String()}})
	r = &custodyReport{}
	b = newReportBuilder(r)
	b.followReleases(audit.Header{Cluster: "test"}, nil)
	for _, raw := range f.entries {
		e, _ := ledger.ParseEntry(raw)
		_ = b.entry(e)
	}
	b.finish()
	if r.FlagTotal != 1 || r.ReleaseFlags[0].Code != "unbound" || !r.Activations[0].Unbound || r.Activations[0].Client != c.id.String() {
		t.Errorf("earlier format: flags %+v, activations %+v", r.ReleaseFlags, r.Activations)
	}
}

func TestAuditWatchDoctoredEntries(t *testing.T) {
	// Entries served that are not those of the signed checkpoint: an alert,
	// and the pin stays.
	c := newTestClient(t, "test", "backup")
	f := newFakeLog(t, "test", 4)
	a, req := f.activate(t, c)
	f.release(t, "n2", num(a), req, c)
	e, err := ledger.ParseEntry(f.entries[5])
	if err != nil {
		t.Fatal(err)
	}
	e.Details["activation"] = "1"
	doctored, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(path, f.trust(t, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged, out bytes.Buffer
	w, err := newWatcher(&fakeSource{fakeLog: f, note: f.checkpoint(t, len(f.entries), nil), doctored: map[uint64][]byte{5: doctored}}, path,
		slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := watchLoop(context.Background(), w, &out, time.Second, true); err == nil {
		t.Fatal("doctored entries passed")
	}
	wantAll(t, "watch", out.String(), "ALERT: the entries the cluster serves from 4 to 6 do not give the root")
	if got := readPin(t, path).Size; got != 4 {
		t.Errorf("pin at %d, want it kept at 4", got)
	}
}

func TestPrintVerifyFinding(t *testing.T) {
	i := uint64(42)
	var out bytes.Buffer
	printVerify(&out, verifyJSON{Pack: "p", Trust: "t", Failure: &failureJSON{Kind: audit.KindAuthorisation, Code: audit.CodeReleaseNoActivation, Index: &i, Message: "entry 42: …"}}, time.Second)
	wantAll(t, "verify", out.String(), "FAIL: entry 42 (authorisation, release_without_activation): entry 42: …")
	out.Reset()
	printVerify(&out, verifyJSON{Pack: "p", Trust: "t", Releases: &audit.ReleaseCounts{Activations: 2, Releases: 4, Unbound: 3}}, time.Second)
	wantAll(t, "verify", out.String(), "releases    4 share releases bound to 2 activations", "WARNING: 3 activations and share releases of the earlier format")
}
