package main

import (
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/internal/buildinfo"
	"github.com/custos-eu/custos/internal/connlimit"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
)

// Every custos_* metric a node serves is documented in docs/monitoring.md,
// and every metric the example alerts use is one a node serves: a renamed
// metric cannot silently disarm an alert.
func TestMetricsDocumentedAndAlertable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	leaf, caFile := writeShortLivedPKI(t, 20, 5)
	certs, err := newCertExpiry(leaf, caFile, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	fake := httpapitest.NewFake("dev", "node-1", "FR", "")
	hm := newHSMMetrics()
	tok := hm.wrap(hsmtest.NewFake(), "node-1")
	reg := apiRegistry(connlimit.NewListener(ln, 1))
	reg.MustRegister(hm, buildInfoMetric(buildinfo.Read()), certs, newShareHealth(&fakeShares{st: fake.Status()}, tok))
	httpapi.New(fake, httpapi.Options{Logger: slog.New(slog.DiscardHandler), Registry: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, mf := range mfs {
		served[mf.GetName()] = true
	}
	// Families that appear only after a first observation.
	for _, n := range []string{"custos_http_requests_total", "custos_http_request_duration_seconds"} {
		served[n] = true
	}
	doc, err := os.ReadFile("../../docs/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	for n := range served {
		if strings.HasPrefix(n, "custos_") && !regexp.MustCompile("`"+n+"[`{]").Match(doc) {
			t.Errorf("docs/monitoring.md does not document %s", n)
		}
	}
	for _, n := range []string{"custos_build_info", "custos_cert_expiry_seconds", "custos_hsm_op_seconds", "custos_hsm_errors_total",
		"custos_kek_shares_held", "custos_kek_shares_unopenable", "custos_kek_versions_below_threshold"} {
		if !served[n] {
			t.Errorf("a node does not serve %s", n)
		}
	}
	rules, err := os.ReadFile("../../deploy/prometheus/custos-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range regexp.MustCompile(`custos_[a-z0-9_]+`).FindAllString(string(rules), -1) {
		base := regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(n, "")
		if !served[n] && !served[base] {
			t.Errorf("custos-alerts.yml uses %s, which no node serves", n)
		}
	}
}
