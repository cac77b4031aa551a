// Lock-free counters behind Node.Metrics.

package keysvc

import (
	"math"
	"sync/atomic"
)

type counters struct {
	appends, appendFailures, forwarded       atomic.Uint64
	batches, batchFailures, batchEntries     atomic.Uint64
	applied, rejected, restores, checkpoints atomic.Uint64
	batchSize, commitLatency                 histogram
	queueDepth, inFlight                     atomic.Int64
	keyOpDenied, activations, cacheHits      atomic.Uint64
	sharesReleased, releasesRefused          atomic.Uint64
	snapshotsRefused, denialsFolded          atomic.Uint64
	cachedKeys                               atomic.Int64
}

func newCounters() *counters {
	c := &counters{}
	c.batchSize.init(sizeBuckets)
	c.commitLatency.init(durationBuckets)
	return c
}

// histogram counts observations per bucket (not cumulative; made cumulative
// when read) and their sum, as float64 bits.
type histogram struct {
	bounds  []float64
	buckets []atomic.Uint64 // len(bounds)+1, the last one for +Inf
	count   atomic.Uint64
	sumBits atomic.Uint64
}

func (h *histogram) init(bounds []float64) {
	h.bounds = bounds
	h.buckets = make([]atomic.Uint64, len(bounds)+1)
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *histogram) snapshot() Histogram {
	s := Histogram{Bounds: append([]float64(nil), h.bounds...), Counts: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range h.bounds {
		cum += h.buckets[i].Load()
		s.Counts[i] = cum
	}
	s.Count = h.count.Load()
	s.Sum = math.Float64frombits(h.sumBits.Load())
	return s
}

func (c *counters) snapshot() Metrics {
	return Metrics{
		Appends:          c.appends.Load(),
		AppendFailures:   c.appendFailures.Load(),
		Forwarded:        c.forwarded.Load(),
		Batches:          c.batches.Load(),
		BatchFailures:    c.batchFailures.Load(),
		BatchEntries:     c.batchEntries.Load(),
		BatchSize:        c.batchSize.snapshot(),
		CommitLatency:    c.commitLatency.snapshot(),
		Applied:          c.applied.Load(),
		Rejected:         c.rejected.Load(),
		Restores:         c.restores.Load(),
		SnapshotsRefused: c.snapshotsRefused.Load(),
		Checkpoints:      c.checkpoints.Load(),
		QueueDepth:       int(c.queueDepth.Load()),
		KeyOpsDenied:     c.keyOpDenied.Load(),
		DenialsFolded:    c.denialsFolded.Load(),
		Activations:      c.activations.Load(),
		KeyCacheHits:     c.cacheHits.Load(),
		SharesRelease:    c.sharesReleased.Load(),
		ReleasesRefused:  c.releasesRefused.Load(),
		CachedKeys:       int(c.cachedKeys.Load()),
		InFlight:         int(c.inFlight.Load()),
	}
}
