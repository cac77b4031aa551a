// The daemon's own metrics, next to httpapi's: what the binary is
// (custos_build_info), how long the node's and its CA's certificates have
// left (custos_cert_expiry_seconds), and the health of the KEK shares this
// node holds (custos_kek_*). docs/monitoring.md lists them with the alerts
// that use them.

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/internal/buildinfo"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// buildInfoMetric is custos_build_info{version,revision,go_version} 1.
func buildInfoMetric(in buildinfo.Info) prometheus.Collector {
	rev := in.Revision
	if in.Modified {
		rev += "-modified"
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "custos_build_info",
		Help:        "Always 1; its labels say which build of custosd runs: module version, VCS revision (\"-modified\" when built with uncommitted changes) and Go version.",
		ConstLabels: prometheus.Labels{"version": in.Version, "revision": rev, "go_version": in.GoVersion},
	}, func() float64 { return 1 })
}

// certExpiry is custos_cert_expiry_seconds{cert="node"|"ca"}: seconds
// until the NotAfter of the node's certificate (as loaded at start, the
// one it presents until restarted) and of the CA certificate that issued
// it, read from tls.ca. Negative once expired.
type certExpiry struct {
	desc     *prometheus.Desc
	node, ca time.Time
	now      func() time.Time
}

func newCertExpiry(leaf *x509.Certificate, caFile string, now func() time.Time) (*certExpiry, error) {
	ca, err := issuerIn(leaf, caFile)
	if err != nil {
		return nil, err
	}
	return &certExpiry{
		desc: prometheus.NewDesc("custos_cert_expiry_seconds",
			"Seconds of validity left (negative once expired) of this node's TLS certificate (cert=\"node\") and of the CA certificate that issued it (cert=\"ca\").",
			[]string{"cert"}, nil),
		node: leaf.NotAfter, ca: ca.NotAfter, now: now,
	}, nil
}

// issuerIn returns the certificate in the PEM file caFile that signed leaf,
// or, when none did, the one that expires first (a file with an old and a
// new CA during a rotation, the node certificate not yet reissued).
func issuerIn(leaf *x509.Certificate, caFile string) (*x509.Certificate, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls.ca: %w", err)
	}
	var first *x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tls.ca %s: %w", caFile, err)
		}
		if leaf.CheckSignatureFrom(c) == nil {
			return c, nil
		}
		if first == nil || c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	if first == nil {
		return nil, fmt.Errorf("tls.ca %s: no certificate in it", caFile)
	}
	return first, nil
}

// leafOf returns c's parsed leaf.
func leafOf(c tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("tls: no certificate")
	}
	return x509.ParseCertificate(c.Certificate[0])
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, c.node.Sub(now).Seconds(), "node")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, c.ca.Sub(now).Seconds(), "ca")
}

// shareSource is what the share-health gauges read: *keysvc.Node.
type shareSource interface {
	KEKs() ([]state.KEK, error)
	Status() keysvc.Status
}

// shareHealth computes the custos_kek_* share gauges at each scrape from
// this node's applied state and one List of its token; see ShareHealth.
type shareHealth struct {
	node                          shareSource
	tok                           hsm.Token
	held, unopenable, belowThresh *prometheus.Desc
}

func newShareHealth(node shareSource, tok hsm.Token) *shareHealth {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &shareHealth{
		node: node, tok: tok,
		held: d("custos_kek_shares_held",
			"KEK versions, not destroyed, of which the cluster state says this node holds a sealed share."),
		unopenable: d("custos_kek_shares_unopenable",
			"Of custos_kek_shares_held, the versions whose sealing key is missing from this node's HSM token: this node cannot open its share."),
		belowThresh: d("custos_kek_versions_below_threshold",
			"KEK versions, not destroyed, with fewer share holders among the cluster's current voting members (as this node's state lists them) than the version's threshold: they cannot be activated."),
	}
}

// ShareCounts are the share-health figures.
type ShareCounts struct {
	Held, Unopenable, BelowThreshold int
}

// counts reads the figures: a version counts when it is not destroyed
// (active or disabled: a disabled version may be enabled again).
func (s *shareHealth) counts() (ShareCounts, error) {
	keks, err := s.node.KEKs()
	if err != nil {
		return ShareCounts{}, err
	}
	st := s.node.Status()
	voters := map[string]bool{}
	for _, m := range st.Members {
		if m.Registered && m.Voter {
			voters[m.ID] = true
		}
	}
	var held []string
	var c ShareCounts
	for _, k := range keks {
		for _, v := range k.Versions {
			if v.State == ledger.KEKDestroyed {
				continue
			}
			n := 0
			for _, sh := range v.Shares {
				if voters[sh.Node] {
					n++
				}
			}
			if n < v.Threshold {
				c.BelowThreshold++
			}
			if _, holds := v.Share(st.NodeID); holds {
				held = append(held, kek.Label(k.ID, v.Version))
			}
		}
	}
	c.Held = len(held)
	if len(held) == 0 {
		return c, nil
	}
	keys, err := s.tok.List()
	if err != nil {
		return ShareCounts{}, fmt.Errorf("list the token's keys: %w", err)
	}
	have := map[string]bool{}
	for _, k := range keys {
		if k.Kind == hsm.KindAES {
			have[k.Label] = true
		}
	}
	for _, l := range held {
		if !have[l] {
			c.Unopenable++
		}
	}
	return c, nil
}

func (s *shareHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.held
	ch <- s.unopenable
	ch <- s.belowThresh
}

// Collect sends nothing when the state or the token cannot be read: a
// missing series is what an absent() alert catches, and the HSM error is
// counted in custos_hsm_errors_total{op="list"}.
func (s *shareHealth) Collect(ch chan<- prometheus.Metric) {
	c, err := s.counts()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(s.held, prometheus.GaugeValue, float64(c.Held))
	ch <- prometheus.MustNewConstMetric(s.unopenable, prometheus.GaugeValue, float64(c.Unopenable))
	ch <- prometheus.MustNewConstMetric(s.belowThresh, prometheus.GaugeValue, float64(c.BelowThreshold))
}
