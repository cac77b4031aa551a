// Prometheus metrics: the API's requests by route and status, and the
// node's own counters read from Service.Metrics and Service.Status at scrape.

package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-eu/custos/keysvc"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_http_requests_total",
			Help: "API requests answered, by route pattern, method and HTTP status.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custos_http_request_duration_seconds",
			Help:    "API request latency, by route pattern, method and HTTP status.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(route, method string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(route, method, code).Inc()
	m.duration.WithLabelValues(route, method, code).Observe(d.Seconds())
}

// nodeCollector exports keysvc.Metrics and a few Status gauges.
type nodeCollector struct {
	svc Service

	appends, appendFailures, forwarded                     *prometheus.Desc
	batches, batchFailures, batchEntries                   *prometheus.Desc
	batchSize, commitLatency                               *prometheus.Desc
	applied, rejected, restores, checkpoints               *prometheus.Desc
	queueDepth, inFlight                                   *prometheus.Desc
	logSize, term, commitIndex, appliedIndex               *prometheus.Desc
	isLeader, ready                                        *prometheus.Desc
	keyOpsDenied, denialsFolded, activations, keyCacheHits *prometheus.Desc
	sharesReleased, cachedKeys                             *prometheus.Desc
	releasesRefused                                        *prometheus.Desc

	snapshotsRefused          *prometheus.Desc
	tlsRejected, tlsOverIPCap *prometheus.Desc
}

func newNodeCollector(svc Service) *nodeCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &nodeCollector{
		svc:             svc,
		appends:         d("custos_ledger_appends_total", "Log entries acknowledged as committed to callers on this node."),
		appendFailures:  d("custos_ledger_append_failures_total", "Log entries whose append returned an error on this node."),
		forwarded:       d("custos_ledger_forwarded_entries_total", "Log entries this node forwarded to the leader."),
		batches:         d("custos_ledger_batches_total", "Group-commit batches this node proposed as leader."),
		batchFailures:   d("custos_ledger_batch_failures_total", "Proposed batches not confirmed committed."),
		batchEntries:    d("custos_ledger_batch_entries_total", "Entries in the proposed batches."),
		batchSize:       d("custos_ledger_batch_size_entries", "Entries per proposed batch."),
		commitLatency:   d("custos_ledger_commit_latency_seconds", "Time from an append entering the queue to its acknowledgement."),
		applied:         d("custos_state_applied_total", "Raft commands applied by this node's state machine."),
		rejected:        d("custos_state_rejected_total", "Applied raft commands the state machine rejected."),
		restores:        d("custos_state_restores_total", "Snapshots installed into the state database."),
		checkpoints:     d("custos_ledger_checkpoints_signed_total", "Checkpoints this node signed."),
		queueDepth:      d("custos_ledger_queue_depth", "Appends waiting for a batch."),
		inFlight:        d("custos_ledger_batches_in_flight", "Batches proposed and not yet answered."),
		logSize:         d("custos_ledger_size_entries", "Entries in this node's copy of the key-op log."),
		term:            d("custos_raft_term", "Current raft term."),
		commitIndex:     d("custos_raft_commit_index", "Last raft index known committed."),
		appliedIndex:    d("custos_raft_applied_index", "Last raft index applied to the state machine."),
		isLeader:        d("custos_raft_leader", "1 if this node is the leader."),
		ready:           d("custos_node_ready", "1 if the node is ready to serve (its health check passes)."),
		keyOpsDenied:    d("custos_keyops_denied_total", "Key operations (batch items included) this node refused; every refusal is logged."),
		denialsFolded:   d("custos_denials_folded_total", "Refusals this node counted in a folded log entry instead of logging them one by one."),
		activations:     d("custos_kek_activations_total", "KEK versions this node reconstituted from t shares."),
		keyCacheHits:    d("custos_kek_cache_hits_total", "Key operations served by an activated key from this node's cache."),
		sharesReleased:  d("custos_kek_shares_released_total", "Shares this node released to peers for their activations."),
		releasesRefused: d("custos_kek_share_releases_refused_total", "Share requests this node refused (each is logged)."),
		cachedKeys:      d("custos_kek_cached_keys", "Activated KEK versions held in this node's memory."),

		snapshotsRefused: d("custos_state_snapshots_refused_total", "Snapshots refused for contradicting this node's log or a checkpoint it signed."),
		tlsRejected: d("custos_raft_tls_rejected_total",
			"Inbound connections to the raft listener (raft and peer channel) refused at or before the TLS handshake: failed, not begun within the first-bytes timeout, or over the per-address cap."),
		tlsOverIPCap: d("custos_raft_tls_over_ip_cap_total",
			"Inbound connections to the raft listener closed at accept because their IP address already had its cap of handshakes in progress."),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.appends, c.appendFailures, c.forwarded, c.batches, c.batchFailures, c.batchEntries,
		c.batchSize, c.commitLatency, c.applied, c.rejected, c.restores, c.checkpoints,
		c.queueDepth, c.inFlight, c.logSize, c.term, c.commitIndex, c.appliedIndex, c.isLeader, c.ready,
		c.keyOpsDenied, c.denialsFolded, c.activations, c.keyCacheHits, c.sharesReleased, c.cachedKeys, c.releasesRefused,
		c.snapshotsRefused, c.tlsRejected, c.tlsOverIPCap,
	} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.svc.Metrics()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.appends, m.Appends)
	counter(c.appendFailures, m.AppendFailures)
	counter(c.forwarded, m.Forwarded)
	counter(c.batches, m.Batches)
	counter(c.batchFailures, m.BatchFailures)
	counter(c.batchEntries, m.BatchEntries)
	counter(c.applied, m.Applied)
	counter(c.rejected, m.Rejected)
	counter(c.restores, m.Restores)
	counter(c.snapshotsRefused, m.SnapshotsRefused)
	counter(c.checkpoints, m.Checkpoints)
	gauge(c.queueDepth, float64(m.QueueDepth))
	gauge(c.inFlight, float64(m.InFlight))
	counter(c.keyOpsDenied, m.KeyOpsDenied)
	counter(c.denialsFolded, m.DenialsFolded)
	counter(c.activations, m.Activations)
	counter(c.keyCacheHits, m.KeyCacheHits)
	counter(c.sharesReleased, m.SharesRelease)
	counter(c.releasesRefused, m.ReleasesRefused)
	gauge(c.cachedKeys, float64(m.CachedKeys))
	histogram(ch, c.batchSize, m.BatchSize)
	histogram(ch, c.commitLatency, m.CommitLatency)

	st := c.svc.Status()
	gauge(c.logSize, float64(st.LogSize))
	gauge(c.term, float64(st.Raft.Term))
	gauge(c.commitIndex, float64(st.Raft.CommitIndex))
	gauge(c.appliedIndex, float64(st.Raft.AppliedIndex))
	counter(c.tlsRejected, st.Raft.TLSRejected)
	counter(c.tlsOverIPCap, st.Raft.TLSOverIPCap)
	gauge(c.isLeader, boolFloat(st.Leader.ID != "" && st.Leader.ID == st.NodeID))
	gauge(c.ready, boolFloat(st.NotReady == ""))
}

func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h keysvc.Histogram) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			buckets[b] = h.Counts[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
