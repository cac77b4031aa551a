package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/internal/buildinfo"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// gather registers cs on a new registry and returns every series as
// "name{label=value,...}" (labels sorted by name) with its value: a gauge's
// or counter's value, a histogram's count of observations.
func gather(t *testing.T, cs ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

func TestBuildInfoMetric(t *testing.T) {
	mfs := gather(t, buildInfoMetric(buildinfo.Info{Version: "v1.2.3", Revision: "abc", Modified: true, GoVersion: "go1.27.3"}))
	if v, ok := mfs["custos_build_info{go_version=go1.27.3,revision=abc-modified,version=v1.2.3}"]; !ok || v != 1 || len(mfs) != 1 {
		t.Fatalf("custos_build_info: %v", mfs)
	}
}

// Every HSM operation is timed per token and op; failures other than "not
// found" are counted, and the series exist at zero before any failure.
func TestHSMMetrics(t *testing.T) {
	hm := newHSMMetrics()
	fake := hsmtest.NewFake()
	tok := hm.wrap(fake, "node-1")
	mfs := gather(t, hm)
	for _, op := range hsmOps {
		if v, ok := mfs["custos_hsm_errors_total{op="+op+",token=node-1}"]; !ok || v != 0 {
			t.Errorf("errors_total{op=%q} before any operation: %v, %v", op, v, ok)
		}
	}
	if err := tok.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	sealed, err := tok.Seal("k", []byte("secret-plaintext"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Open("k", sealed, []byte("other aad")); !errors.Is(err, hsm.ErrOpen) {
		t.Fatalf("open with other aad: %v", err)
	}
	if _, err := tok.Signer("absent"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("signer absent: %v", err)
	}
	s, err := tok.GenerateSigner("ec")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(nil, make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	fake.(*hsmtest.Fake).SetFault(func(op, label string) error { return hsm.ErrDevice })
	if _, err := tok.Seal("k", []byte("x"), nil); !errors.Is(err, hsm.ErrDevice) {
		t.Fatalf("seal with a broken device: %v", err)
	}
	if _, err := tok.List(); err == nil {
		t.Fatal("list with a broken device succeeded")
	}
	fake.(*hsmtest.Fake).SetFault(nil)

	mfs = gather(t, hm)
	for op, want := range map[string]struct{ n, errs float64 }{
		opGenerateAES: {1, 0}, opSeal: {2, 1}, opOpen: {1, 1}, opSigner: {1, 0}, opGenerateSigner: {1, 0},
		opSign: {1, 0}, opList: {1, 1}, opDestroy: {0, 0},
	} {
		l := "{op=" + op + ",token=node-1}"
		n, nok := mfs["custos_hsm_op_seconds"+l]
		e, eok := mfs["custos_hsm_errors_total"+l]
		if !nok || !eok || n != want.n || e != want.errs {
			t.Errorf("op %s: %v observations, %v errors; want %v, %v", op, n, e, want.n, want.errs)
		}
	}
	// Nothing secret, and no key label, in a series: only the token label and the op.
	for k := range mfs {
		if strings.Contains(k, "secret") || strings.Contains(k, "=k") || strings.Contains(k, "=ec") {
			t.Errorf("series %s", k)
		}
	}
}

// writeShortLivedPKI makes a CA valid for caDays and a node certificate
// valid for nodeDays (cut to the CA's), as identity issues them, and
// returns the node's leaf and the CA file (with an unrelated, sooner
// expiring CA before it, as during a CA rotation).
func writeShortLivedPKI(t *testing.T, caDays, nodeDays int) (*x509.Certificate, string) {
	t.Helper()
	day := 24 * time.Hour
	ca, err := identity.NewCA("test", time.Duration(caDays)*day)
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.NewCA("test", day)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(identity.Identity{Cluster: "test", Name: "n1", Role: identity.RoleNode, Region: "DE"},
		identity.IssueOptions{DNSNames: []string{"localhost"}, Validity: time.Duration(nodeDays) * day})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, append(other.CertPEM(), ca.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	return leaf, caFile
}

// The expiry gauges give the seconds left of the node's certificate and of
// the CA that issued it (not another CA in the file), and go negative once
// expired.
func TestCertExpiryMetric(t *testing.T) {
	leaf, caFile := writeShortLivedPKI(t, 20, 5)
	now := time.Now()
	ce, err := newCertExpiry(leaf, caFile, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, ce)
	node, ca := mfs["custos_cert_expiry_seconds{cert=node}"], mfs["custos_cert_expiry_seconds{cert=ca}"]
	if want := leaf.NotAfter.Sub(now).Seconds(); node != want || node > 5*86400 || node < 4*86400 {
		t.Errorf("node expiry %v s, want %v (about 5 days)", node, want)
	}
	if ca < 19*86400 || ca > 20*86400 {
		t.Errorf("ca expiry %v s, want about 20 days (the issuing CA, not the 1-day one beside it)", ca)
	}
	now = leaf.NotAfter.Add(time.Hour)
	if v := gather(t, ce)["custos_cert_expiry_seconds{cert=node}"]; math.Abs(v+3600) > 1e-6 {
		t.Errorf("an hour after expiry: %v, want -3600", v)
	}

	// A CA file without the issuer: the soonest to expire is reported.
	_, otherFile := writeShortLivedPKI(t, 30, 30)
	ce, err = newCertExpiry(leaf, otherFile, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if v := gather(t, ce)["custos_cert_expiry_seconds{cert=ca}"]; v > 86400 || v <= 0 {
		t.Errorf("no issuer in the file: ca expiry %v, want the 1-day CA's", v)
	}
	// Files that hold no CA are configuration errors.
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not pem"), 0o644)
	for _, f := range []string{empty, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := newCertExpiry(leaf, f, time.Now); err == nil || !strings.Contains(err.Error(), "tls.ca") {
			t.Errorf("CA file %s: %v", f, err)
		}
	}
}

// fakeShares is a shareSource.
type fakeShares struct {
	keks []state.KEK
	st   keysvc.Status
	err  error
}

func (f *fakeShares) KEKs() ([]state.KEK, error) { return f.keks, f.err }
func (f *fakeShares) Status() keysvc.Status      { return f.st }

func version(v uint32, st string, threshold int, holders ...string) state.KEKVersion {
	kv := state.KEKVersion{Version: v, State: st, Threshold: threshold}
	for i, h := range holders {
		kv.Shares = append(kv.Shares, state.HeldShare{Node: h, Index: uint16(i + 1)})
	}
	return kv
}

// The share gauges count what they say: versions this node holds (not
// destroyed), of those the ones whose sealing key is gone from its token,
// and versions with fewer voting holders than their threshold.
func TestShareHealthMetric(t *testing.T) {
	tok := hsmtest.NewFake()
	for _, l := range []string{kek.Label("a", 1), kek.Label("a", 2), kek.Label("b", 1)} {
		if err := tok.GenerateAESKey(l); err != nil {
			t.Fatal(err)
		}
	}
	src := &fakeShares{
		st: keysvc.Status{NodeID: "n1", Members: []keysvc.Member{
			{ID: "n1", Registered: true, Voter: true}, {ID: "n2", Registered: true, Voter: true},
			{ID: "n3", Registered: true}, // not yet a voter
		}},
		keks: []state.KEK{
			{ID: "a", Versions: []state.KEKVersion{
				version(1, ledger.KEKActive, 2, "n1", "n2", "n3"),   // held, key present, 2 voters ≥ 2
				version(2, ledger.KEKDisabled, 3, "n1", "n2", "n3"), // held, key present, 2 voters < 3
				version(3, ledger.KEKActive, 2, "n1", "n2", "n4"),   // held, key missing (n4 removed: not a member)
				version(4, ledger.KEKDestroyed, 3, "n1", "n5"),      // destroyed: not counted
			}},
			{ID: "b", Versions: []state.KEKVersion{
				version(1, ledger.KEKActive, 1, "n2"), // not held here
				version(2, ledger.KEKActive, 2, "n3", "n5"),
			}},
		},
	}
	sh := newShareHealth(src, tok)
	mfs := gather(t, sh)
	want := map[string]float64{
		"custos_kek_shares_held{}": 3, "custos_kek_shares_unopenable{}": 1, "custos_kek_versions_below_threshold{}": 2,
	}
	if fmt.Sprint(mfs) != fmt.Sprint(want) {
		t.Errorf("share gauges %v, want %v", mfs, want)
	}
	// The key of a held version destroyed behind the node's back.
	if err := tok.Destroy(kek.Label("a", 1)); err != nil {
		t.Fatal(err)
	}
	if v := gather(t, sh)["custos_kek_shares_unopenable{}"]; v != 2 {
		t.Errorf("after a sealing key vanished: unopenable %v, want 2", v)
	}
	// An unreadable state or token: no series rather than a wrong zero.
	src.err = errors.New("state broken")
	if mfs := gather(t, sh); len(mfs) != 0 {
		t.Errorf("state unreadable: %v", mfs)
	}
	src.err = nil
	tok.(*hsmtest.Fake).SetFault(func(op, label string) error { return hsm.ErrDevice })
	if mfs := gather(t, sh); len(mfs) != 0 {
		t.Errorf("token unreadable: %v", mfs)
	}
}

// The measured token is used by every request goroutine at once: its
// counts add up under concurrent use (run with -race).
func TestHSMMetricsConcurrent(t *testing.T) {
	hm := newHSMMetrics()
	tok := hm.wrap(hsmtest.NewFake(), "node-1")
	if err := tok.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 50
	done := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				s, err := tok.Seal("k", []byte("x"), nil)
				if err == nil {
					_, err = tok.Open("k", s, []byte("wrong"))
					if errors.Is(err, hsm.ErrOpen) {
						err = nil
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got := gather(t, hm)
	if got["custos_hsm_op_seconds{op=seal,token=node-1}"] != workers*each || got["custos_hsm_errors_total{op=open,token=node-1}"] != workers*each ||
		got["custos_hsm_errors_total{op=seal,token=node-1}"] != 0 {
		t.Errorf("seals %v, open errors %v, seal errors %v; want %d, %d, 0", got["custos_hsm_op_seconds{op=seal,token=node-1}"],
			got["custos_hsm_errors_total{op=open,token=node-1}"], got["custos_hsm_errors_total{op=seal,token=node-1}"], workers*each, workers*each)
	}
}

// BenchmarkHSMMetrics: what the metered token adds to an HSM operation, on
// the in-memory fake (a SoftHSM Seal takes tens of microseconds, a network
// HSM's milliseconds). Compare the two sub-benchmarks of one run.
func BenchmarkHSMMetrics(b *testing.B) {
	plain := make([]byte, 67)
	for _, metered := range []bool{false, true} {
		name := "bare"
		if metered {
			name = "metered"
		}
		b.Run(name, func(b *testing.B) {
			var tok hsm.Token = hsmtest.NewFake()
			if metered {
				tok = newHSMMetrics().wrap(tok, "node-1")
			}
			if err := tok.GenerateAESKey("k"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tok.Seal("k", plain, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
