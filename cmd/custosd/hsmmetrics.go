// Metrics of the node's HSM token: every operation's latency and its
// failures, per token and operation, measured by a decorator of hsm.Token.

package main

import (
	"crypto"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-eu/custos/hsm"
)

// HSM operations, the op label's values.
const (
	opGenerateAES    = "generate_aes"
	opGenerateSigner = "generate_signer"
	opSigner         = "signer" // looking up a key pair
	opSign           = "sign"
	opSeal           = "seal"
	opOpen           = "open"
	opDestroy        = "destroy"
	opList           = "list"
)

var hsmOps = []string{opGenerateAES, opGenerateSigner, opSigner, opSign, opSeal, opOpen, opDestroy, opList}

// hsmMetrics are custos_hsm_op_seconds and custos_hsm_errors_total. It is
// a prometheus.Collector; register it once.
type hsmMetrics struct {
	seconds *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

func newHSMMetrics() *hsmMetrics {
	return &hsmMetrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custos_hsm_op_seconds",
			Help:    "Latency of HSM token operations (failed ones included), by token label and operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"token", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_hsm_errors_total",
			Help: "HSM token operations that failed, by token label and operation; a key found absent (not found) is an answer, not counted.",
		}, []string{"token", "op"}),
	}
}

func (m *hsmMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.seconds.Describe(ch)
	m.errors.Describe(ch)
}

func (m *hsmMetrics) Collect(ch chan<- prometheus.Metric) {
	m.seconds.Collect(ch)
	m.errors.Collect(ch)
}

// wrap returns tok measured under the token label label. Every operation's
// series exist from the start (at zero), so a rate() over them is defined
// before the first failure.
func (m *hsmMetrics) wrap(tok hsm.Token, label string) hsm.Token {
	t := &meteredToken{tok: tok, seconds: map[string]prometheus.Observer{}, errors: map[string]prometheus.Counter{}}
	for _, op := range hsmOps {
		t.seconds[op] = m.seconds.WithLabelValues(label, op)
		t.errors[op] = m.errors.WithLabelValues(label, op)
	}
	return t
}

// meteredToken is an hsm.Token whose operations are measured. It adds no
// state of its own beyond the read-only maps, so it is as safe for
// concurrent use as the token it wraps. Close passes through unmeasured.
type meteredToken struct {
	tok     hsm.Token
	seconds map[string]prometheus.Observer
	errors  map[string]prometheus.Counter
}

var _ hsm.Token = (*meteredToken)(nil)

// observe records one operation op that started at start and ended with err.
func (t *meteredToken) observe(op string, start time.Time, err error) {
	t.seconds[op].Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, hsm.ErrKeyNotFound) {
		t.errors[op].Inc()
	}
}

func (t *meteredToken) GenerateAESKey(label string) error {
	start := time.Now()
	err := t.tok.GenerateAESKey(label)
	t.observe(opGenerateAES, start, err)
	return err
}

func (t *meteredToken) GenerateSigner(label string) (crypto.Signer, error) {
	start := time.Now()
	s, err := t.tok.GenerateSigner(label)
	t.observe(opGenerateSigner, start, err)
	if err != nil {
		return nil, err
	}
	return &meteredSigner{Signer: s, t: t}, nil
}

func (t *meteredToken) Signer(label string) (crypto.Signer, error) {
	start := time.Now()
	s, err := t.tok.Signer(label)
	t.observe(opSigner, start, err)
	if err != nil {
		return nil, err
	}
	return &meteredSigner{Signer: s, t: t}, nil
}

func (t *meteredToken) Seal(label string, plaintext, aad []byte) ([]byte, error) {
	start := time.Now()
	b, err := t.tok.Seal(label, plaintext, aad)
	t.observe(opSeal, start, err)
	return b, err
}

func (t *meteredToken) Open(label string, sealed, aad []byte) ([]byte, error) {
	start := time.Now()
	b, err := t.tok.Open(label, sealed, aad)
	t.observe(opOpen, start, err)
	return b, err
}

func (t *meteredToken) Destroy(label string) error {
	start := time.Now()
	err := t.tok.Destroy(label)
	t.observe(opDestroy, start, err)
	return err
}

func (t *meteredToken) List() ([]hsm.KeyInfo, error) {
	start := time.Now()
	ks, err := t.tok.List()
	t.observe(opList, start, err)
	return ks, err
}

func (t *meteredToken) Close() error { return t.tok.Close() }

// meteredSigner measures Sign; Public passes through.
type meteredSigner struct {
	crypto.Signer
	t *meteredToken
}

func (s *meteredSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	sig, err := s.Signer.Sign(rand, digest, opts)
	s.t.observe(opSign, start, err)
	return sig, err
}
