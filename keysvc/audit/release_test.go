package audit_test

// Activations and share releases: a kek.release must answer a kek.activate
// logged before it that carries the client's signed request.

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/reqsig"
)

// synthClient is a client certificate of the synthetic cluster and its key.
type synthClient struct {
	id   identity.Identity
	cert *x509.Certificate
	key  crypto.Signer
}

var (
	clientCAOnce sync.Once
	clientCA     *identity.CA
	clientCAErr  error
	clientPool   = map[string]*synthClient{}
	clientMu     sync.Mutex
)

// synthAgent returns agent name's certificate (region DE), valid over the
// synthetic log's times.
func synthAgent(tb testing.TB, name string) *synthClient {
	tb.Helper()
	return synthClientOf(tb, identity.RoleAgent, name, "DE")
}

// synthClientOf returns the certificate of the client of role and name in
// region, valid over the synthetic log's times.
func synthClientOf(tb testing.TB, role identity.Role, name, region string) *synthClient {
	tb.Helper()
	clientCAOnce.Do(func() { clientCA, clientCAErr = identity.NewCA(synthCluster, 3*365*24*time.Hour) })
	if clientCAErr != nil {
		tb.Fatal(clientCAErr)
	}
	clientMu.Lock()
	defer clientMu.Unlock()
	key := string(role) + "/" + name + "?" + region
	if c := clientPool[key]; c != nil {
		return c
	}
	id := identity.Identity{Cluster: synthCluster, Name: name, Role: role, Region: region}
	certPEM, keyPEM, err := clientCA.Issue(id, identity.IssueOptions{NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Validity: 365 * 24 * time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	c := &synthClient{id: id, cert: pair.Leaf, key: pair.PrivateKey.(crypto.Signer)}
	clientPool[key] = c
	return c
}

// activation shapes a kek.activate entry.
type activation struct {
	node      string // serving node; "n1"
	client    *synthClient
	signer    *synthClient // whose key and certificate sign; client's by default
	kek       string       // "payroll"
	version   uint32       // 1
	requestID string       // fresh by default
	op        string       // unwrap by default
	tamper    bool         // log a message other than the one signed
}

// activate logs a kek.activate as the serving node does before it asks its
// peers, and returns its index and request id.
func (s *synth) activate(a activation) (uint64, string) {
	s.tb.Helper()
	if a.node == "" {
		a.node = "n1"
	}
	if a.client == nil {
		a.client = synthAgent(s.tb, "backup")
	}
	if a.signer == nil {
		a.signer = a.client
	}
	if a.kek == "" {
		a.kek = "payroll"
	}
	if a.version == 0 {
		a.version = 1
	}
	if a.requestID == "" {
		a.requestID = reqsig.NewRequestID()
	}
	if a.op == "" {
		a.op = reqsig.OpUnwrap
	}
	r := reqsig.Request{Cluster: synthCluster, Op: a.op, KEKID: a.kek, Version: a.version, Body: reqsig.BodyHash([]byte("blob")),
		RequestID: a.requestID, Time: s.now.Unix()}
	msg, err := r.Marshal()
	if err != nil {
		s.tb.Fatal(err)
	}
	sig, err := reqsig.Sign(a.signer.key, msg)
	if err != nil {
		s.tb.Fatal(err)
	}
	if a.tamper {
		r.Body = reqsig.BodyHash([]byte("another blob"))
		if msg, err = r.Marshal(); err != nil {
			s.tb.Fatal(err)
		}
	}
	b64 := base64.StdEncoding.EncodeToString
	i := s.add(ledger.Entry{Type: ledger.TypeActivate,
		Actor: ledger.Actor{Identity: a.client.id.String(), Role: string(a.client.id.Role), Region: a.client.id.Region,
			CertFingerprint: identity.Fingerprint(a.client.cert)},
		Node: a.node, KEKID: a.kek, KEKVersion: a.version, RequestID: a.requestID,
		Details: map[string]string{"request": b64(msg), "signature": b64(sig), "client_cert": b64(a.signer.cert.Raw), "ttl_seconds": "300"}})
	return i, a.requestID
}

// release logs node's kek.release of kek v1 for the activation at index
// act (activation "" leaves the detail out: the earlier format).
func (s *synth) release(node, to, act, requestID string, kek string) uint64 {
	d := map[string]string{"to": to, "for": synthAgent(s.tb, "backup").id.String()}
	if act != "" {
		d["activation"] = act
	}
	return s.add(ledger.Entry{Type: ledger.TypeRelease, Actor: ledger.Actor{Identity: "custos://test/node/" + node + "?region=DE", Role: "node", Region: "DE"},
		Node: node, KEKID: kek, KEKVersion: 1, RequestID: requestID, Details: d})
}

func idx(i uint64) string { return strconv.FormatUint(i, 10) }

var (
	relOnce sync.Once
	relBase *synth
)

// releaseLog is three nodes, three officers, and a valid activation by n1
// with releases by n2 and n3.
func releaseLog(tb testing.TB) *synth {
	relOnce.Do(func() {
		s := newSynth(tb)
		s.registerNode("n2")
		s.registerNode("n3")
		s.init(2, "alice", "bob", "carol")
		s.keyOps(3)
		a, req := s.activate(activation{})
		s.release("n2", "n1", idx(a), req, "payroll")
		s.release("n3", "n1", idx(a), req, "payroll")
		s.keyOps(2)
		relBase = s
	})
	c := relBase.clone()
	c.tb = tb
	return c
}

func verifyAll(t *testing.T, s *synth) (*audit.Report, error) {
	t.Helper()
	n := s.size()
	return verify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
}

func wantCode(t *testing.T, err error, code string, index uint64, parts ...string) {
	t.Helper()
	f := wantFailure(t, err, audit.KindAuthorisation, int64(index), parts...)
	if f.Code != code {
		t.Fatalf("failure code %q (%s), want %q", f.Code, f.Msg, code)
	}
}

func TestReleasesValid(t *testing.T) {
	s := releaseLog(t)
	r, err := verifyAll(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Releases; got != (audit.ReleaseCounts{Activations: 1, Releases: 2}) {
		t.Errorf("releases %+v, want 1 activation and 2 releases", got)
	}
	if r.State == nil || !r.State.ReleasesBound {
		t.Errorf("state %+v: want releases bound", r.State)
	}
	// A refusal is logged too, and is no finding.
	a, req := s.activate(activation{})
	s.release("n2", "n1", idx(a), req, "payroll")
	d := s.add(ledger.Entry{Type: ledger.TypeRelease, Actor: ledger.Actor{Identity: "custos://test/node/n3?region=DE", Role: "node", Region: "DE"},
		Node: "n3", KEKID: "payroll", KEKVersion: 1, RequestID: req, Outcome: ledger.OutcomeDenied, Reason: "policy_denied: region",
		Details: map[string]string{"activation": idx(a), "to": "n1", "for": synthAgent(t, "backup").id.String()}})
	if r, err = verifyAll(t, s); err != nil {
		t.Fatal(err)
	}
	if got := r.Releases; got != (audit.ReleaseCounts{Activations: 2, Releases: 3, Denied: 1}) {
		t.Errorf("releases %+v after a refusal at %d", got, d)
	}
}

func TestReleaseWithoutActivation(t *testing.T) {
	s := releaseLog(t)
	i := s.release("n2", "n1", "", "req-00000001", "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseNoActivation, i, "node n2 released its share of kek payroll v1 to node n1", "with no activation")

	s = releaseLog(t)
	i = s.release("n2", "n1", "x12", "req-00000001", "payroll")
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseNoActivation, i, `naming activation "x12", which is not an earlier entry`)

	s = releaseLog(t)
	i = s.release("n2", "n1", idx(s.size()), "req-00000001", "payroll")
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseNoActivation, i, "not an earlier entry")
}

func TestReleaseNamesNonActivation(t *testing.T) {
	s := releaseLog(t)
	initAt := s.findEntry(t, "cluster.init", 0, nil)
	i := s.release("n2", "n1", idx(initAt), "req-00000001", "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseNotActivation, i, "naming entry "+idx(initAt)+" as its activation, which is not an ok kek.activate")
}

func TestReleaseForAnotherKEK(t *testing.T) {
	s := releaseLog(t)
	a, req := s.activate(activation{kek: "hr"})
	i := s.release("n2", "n1", idx(a), req, "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseMismatch, i, "of kek payroll and the activation hr")

	s = releaseLog(t)
	a, req = s.activate(activation{version: 2})
	i = s.release("n2", "n1", idx(a), req, "payroll")
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseMismatch, i, "of version 1 and the activation 2")

	s = releaseLog(t)
	a, _ = s.activate(activation{})
	i = s.release("n2", "n1", idx(a), "req-other-1", "payroll")
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseMismatch, i, "for request id req-other-1")

	s = releaseLog(t)
	a, req = s.activate(activation{node: "n3"})
	i = s.release("n2", "n1", idx(a), req, "payroll")
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseMismatch, i, "to node n1 and the activation n3")
}

func TestActivationTamperedRequest(t *testing.T) {
	s := releaseLog(t)
	a, _ := s.activate(activation{tamper: true})
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationRequestInvalid, a, "does not verify with the client certificate's key")
}

func TestActivationCertificateNotActor(t *testing.T) {
	s := releaseLog(t)
	// Signed, validly, by another client than the one the entry names.
	a, _ := s.activate(activation{signer: synthAgent(t, "intruder")})
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationClientMismatch, a, "custos://test/agent/intruder?region=DE", `the entry's actor is "custos://test/agent/backup?region=DE"`)
}

func TestActivationRequestMismatch(t *testing.T) {
	s := releaseLog(t)
	a, _ := s.activate(activation{op: reqsig.OpWrap})
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationRequestMismatch, a, "a wrap request, which activates no KEK")

	s = releaseLog(t)
	_, req := s.activate(activation{})
	a, _ = s.activate(activation{requestID: req})
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationReplayed, a, "used twice")
}

func TestReleaseTwiceByOnePeer(t *testing.T) {
	s := releaseLog(t)
	a, req := s.activate(activation{})
	s.release("n2", "n1", idx(a), req, "payroll")
	i := s.release("n2", "n1", idx(a), req, "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseDuplicate, i, "node n2 released its share of kek payroll v1 for activation "+idx(a)+" a second time")
}

func TestReleaseToSelf(t *testing.T) {
	s := releaseLog(t)
	a, req := s.activate(activation{})
	i := s.release("n1", "n1", idx(a), req, "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseToSelf, i, "node n1 released its share of kek payroll v1 to itself")
}

func TestReleaseLongAfterActivation(t *testing.T) {
	s := releaseLog(t)
	a, req := s.activate(activation{})
	s.now = s.now.Add(audit.ReleaseWindow + time.Minute)
	i := s.release("n2", "n1", idx(a), req, "payroll")
	_, err := verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseNotActivation, i, "of the last 15m0s of the log")
}

// legacyLog is a log of the earlier format: releases with no activation,
// then the node's own kek.activate after them.
func legacyLog(t *testing.T) *synth {
	s := newSynth(t)
	s.registerNode("n2")
	s.registerNode("n3")
	s.init(2, "alice", "bob", "carol")
	s.release("n2", "n1", "", "", "payroll")
	s.release("n3", "n1", "", "", "payroll")
	s.add(ledger.Entry{Type: ledger.TypeActivate, Actor: ledger.Actor{Identity: "custos://test/node/n1?region=DE", Role: "node", Region: "DE"},
		Node: "n1", KEKID: "payroll", KEKVersion: 1,
		Details: map[string]string{"shares_from": "n2,n3", "ttl_seconds": "0", "for": synthAgent(t, "backup").id.String()}})
	return s
}

func TestReleasesEarlierFormat(t *testing.T) {
	// Accepted, and counted as not bound to a signed request.
	s := legacyLog(t)
	r, err := verifyAll(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Releases; got != (audit.ReleaseCounts{Unbound: 3}) {
		t.Errorf("releases %+v, want 3 unbound", got)
	}
	if r.State.ReleasesBound {
		t.Error("a log of the earlier format only is bound")
	}

	// Once the log records signed requests, an earlier-format release is
	// the attack of issue 12 (or a node left behind by an upgrade).
	a, req := s.activate(activation{})
	s.release("n2", "n1", idx(a), req, "payroll")
	i := s.release("n3", "n1", "", "", "payroll")
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeReleaseNoActivation, i, "with no activation")
	// So is an earlier-format activation.
	s = legacyLog(t)
	s.activate(activation{})
	j := s.add(ledger.Entry{Type: ledger.TypeActivate, Actor: ledger.Actor{Identity: "custos://test/node/n1?region=DE", Role: "node", Region: "DE"},
		Node: "n1", KEKID: "payroll", KEKVersion: 1, Details: map[string]string{"shares_from": "n2,n3", "ttl_seconds": "0"}})
	_, err = verifyAll(t, s)
	wantCode(t, err, audit.CodeActivationRequestInvalid, j, "carries no signed request")
}

func TestReleasesBoundAcrossPacks(t *testing.T) {
	// The trust file's state carries the format switch to the next pack.
	s := releaseLog(t)
	n := s.size()
	r := mustVerify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	next, err := s.trust(n).Advance(r)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := next.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if next, err = audit.ParseTrust(raw); err != nil {
		t.Fatal(err)
	}
	i := s.release("n2", "n1", "", "", "payroll")
	m := s.size()
	_, err = verify(t, s.pack(n, m, packOpts{}), next, audit.Options{})
	wantCode(t, err, audit.CodeReleaseNoActivation, i)

	// A release whose activation is before the pack is counted, not checked.
	s = releaseLog(t)
	a, req := s.activate(activation{})
	n = s.size()
	r = mustVerify(t, s.pack(0, n, packOpts{}), s.trust(n), audit.Options{})
	if next, err = s.trust(n).Advance(r); err != nil {
		t.Fatal(err)
	}
	s.release("n2", "n1", idx(a), req, "payroll")
	m = s.size()
	r = mustVerify(t, s.pack(n, m, packOpts{}), next, audit.Options{})
	if r.Releases.BeforeStart != 1 {
		t.Errorf("releases %+v, want 1 before the pack", r.Releases)
	}
}

// FuzzShareReleases: whatever entries a log holds, ShareReleases never
// panics and names the entry it finds fault with.
func FuzzShareReleases(f *testing.F) {
	s := releaseLog(f)
	a, req := s.activate(activation{tamper: true})
	s.release("n2", "n1", idx(a), req, "payroll")
	s.release("n2", "n1", "", "", "payroll")
	for _, b := range s.entries {
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, x, y []byte) {
		rs := audit.NewShareReleases(synthCluster, false)
		for _, b := range [][]byte{x, y, x} {
			e, err := ledger.ParseEntry(b)
			if err != nil {
				return
			}
			if f := rs.Entry(e); f != nil && f.Index != e.Index {
				t.Fatalf("finding about entry %d while following entry %d", f.Index, e.Index)
			}
		}
	})
}
