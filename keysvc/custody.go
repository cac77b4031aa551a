// The custody index: which kek.activate entry first used each signed client
// request, and which node released its share for which activation. Apply
// keeps it from the log alone, so every node answers alike; peers read it
// before releasing (no replayed request, one release per peer per
// activation).

package keysvc

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
)

var (
	// bucketActivations: cert fingerprint 0x00 request id -> index of the
	// first ok kek.activate entry with that request.
	bucketActivations = []byte("activations")
	// bucketReleases: uint64 activation index || node id -> index of that
	// node's first ok kek.release for the activation.
	bucketReleases = []byte("releases")
)

var (
	activatePrefix = []byte(`","type":"` + TypeActivate + `"`)
	releasePrefix  = []byte(`","type":"` + TypeRelease + `"`)
)

// hasType reports whether raw, a canonical entry, has the type whose
// prefix (`","type":"<type>"`) is given, without parsing it: the type
// comes right after the index and time.
func hasType(raw, prefix []byte) bool {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"index":`))
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"time":"`))
	return ok && len(rest) > len(timeFormat) && bytes.HasPrefix(rest[len(timeFormat):], prefix)
}

// recordCustody indexes raw, log entry index, if it is an ok activation or
// release. First wins: a later duplicate is left for peers to refuse.
func recordCustody(tx *bbolt.Tx, index uint64, raw []byte) error {
	act, rel := hasType(raw, activatePrefix), hasType(raw, releasePrefix)
	if !act && !rel {
		return nil
	}
	e, err := ledger.ParseEntry(raw)
	if err != nil || e.Outcome != ledger.OutcomeOK {
		return nil
	}
	var b *bbolt.Bucket
	var key []byte
	if act {
		if b, err = tx.CreateBucketIfNotExists(bucketActivations); err != nil {
			return err
		}
		key = activationKey(e.Actor.CertFingerprint, e.RequestID)
	} else {
		a, ok := parseIndex(e.Details["activation"])
		if !ok {
			return nil
		}
		if b, err = tx.CreateBucketIfNotExists(bucketReleases); err != nil {
			return err
		}
		key = releaseKey(a, e.Node)
	}
	if b.Get(key) != nil {
		return nil
	}
	return b.Put(key, u64(index))
}

func activationKey(fp, requestID string) []byte { return []byte(fp + "\x00" + requestID) }

func releaseKey(activation uint64, node string) []byte { return append(u64(activation), node...) }

func lookupIndex(tx *bbolt.Tx, bucket, key []byte) (uint64, bool) {
	b := tx.Bucket(bucket)
	if b == nil {
		return 0, false
	}
	v := b.Get(key)
	if len(v) != 8 {
		return 0, false
	}
	return getU64(b, key), true
}

// activationOf returns the first activation of request id by the
// certificate with fingerprint fp.
func activationOf(tx *bbolt.Tx, fp, requestID string) (uint64, bool) {
	return lookupIndex(tx, bucketActivations, activationKey(fp, requestID))
}

// releaseOf returns node's first release for the activation at index a.
func releaseOf(tx *bbolt.Tx, a uint64, node string) (uint64, bool) {
	return lookupIndex(tx, bucketReleases, releaseKey(a, node))
}

// parseIndex parses a decimal log index.
func parseIndex(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// revokedClient reports whether a client certificate, or its identity, is revoked.
func (n *Node) revokedClient(id identity.Identity, fp string) bool {
	_, revoked := n.Revoked(id, fp)
	return revoked
}

// ErrForgedEntry: a node forwarded an entry it may not write.
var ErrForgedEntry = errors.New("keysvc: entry not in the forwarding node's own name")

// CheckForwarded checks an entry that member node from forwards to the
// leader: an entry whose actor is a node must name from itself (a node acts
// only in its own name); a share release is always from's own; an
// activation must carry a client request whose signature verifies now,
// by the client it names. Errors wrap ErrForgedEntry.
func (n *Node) CheckForwarded(from string, e ledger.Entry) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrForgedEntry, fmt.Sprintf(format, a...))
	}
	self := identity.Identity{Cluster: n.cfg.Cluster, Name: from, Role: identity.RoleNode}
	if e.Actor.Role == string(identity.RoleNode) || e.Type == TypeRelease {
		id, err := identity.ParseURI(e.Actor.Identity)
		if err != nil || id.Cluster != self.Cluster || id.Role != identity.RoleNode || id.Name != from {
			return bad("node %q may log %s entries only as itself, not as %q", from, e.Type, e.Actor.Identity)
		}
	}
	if e.Type == TypeActivate && e.Outcome == ledger.OutcomeOK {
		s, err := signedOf(e)
		if err != nil {
			return bad("activation: %v", err)
		}
		vr, err := n.verifyRequest(s)
		if err != nil {
			return bad("activation: %v", err)
		}
		if Actor(vr.Identity, vr.Certificate) != e.Actor || vr.Request.RequestID != e.RequestID {
			return bad("activation names %s, but its request is signed by %s", e.Actor.Identity, vr.Identity)
		}
	}
	return nil
}

// reverifyEvery is how often established raft and peer connections are
// checked again against membership and revocations.
const reverifyEvery = time.Second

// peerID is the node id a verified node certificate names.
func peerID(cert *x509.Certificate) (string, error) {
	id, err := identity.FromCertificate(cert)
	if err != nil {
		return "", err
	}
	return id.Name, nil
}

// verifyMember accepts a raft or peer-channel connection from (or to) a node
// certificate only if, in this node's replicated state, it names a current
// member (a node registered by genesis or by an executed node.add, not
// removed), is the certificate registered for that node, and neither it
// nor its identity is revoked. Before genesis has been applied here (a new
// node waiting to be added) any node certificate of the cluster is
// accepted: the node has no state to check against yet.
func (n *Node) verifyMember(cert *x509.Certificate) error {
	if err := verifyNodePeer(n.cfg.Cluster)(cert); err != nil {
		return err
	}
	id, _ := identity.FromCertificate(cert)
	fp := identity.Fingerprint(cert)
	if r, revoked := n.Revoked(id, fp); revoked {
		return fmt.Errorf("node %s: certificate revoked by entry %d: %s", id.Name, r.Entry, r.Reason)
	}
	var (
		rec     nodeRecord
		found   bool
		genesis bool
	)
	if err := n.state.view(func(tx *bbolt.Tx) (err error) {
		genesis = genesisDone(tx)
		rec, found, err = getNode(tx, id.Name)
		return err
	}); err != nil {
		return err
	}
	switch {
	case !genesis:
		return nil
	case !found || rec.Removed:
		return fmt.Errorf("node %s is not a member of the cluster", id.Name)
	case rec.Cert != "" && rec.Cert != fp:
		return fmt.Errorf("node %s: certificate %s is not the one registered for it (%s)", id.Name, fp, rec.Cert)
	}
	return nil
}

// releasedSet remembers the activations this node released a share for in
// the last maxActivationAge, so that a second request for one is refused
// without waiting for the release entry to be applied here (after that, the
// state machine's index answers too; older activations are refused anyway).
type releasedSet struct {
	mu   sync.Mutex
	at   map[uint64]time.Time
	last time.Time // last prune
}

func (r *releasedSet) record(activation uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.at == nil {
		r.at = map[uint64]time.Time{}
	}
	r.at[activation] = now
	if now.Sub(r.last) > time.Minute {
		for a, t := range r.at {
			if now.Sub(t) > 2*maxActivationAge {
				delete(r.at, a)
			}
		}
		r.last = now
	}
}

func (r *releasedSet) has(activation uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.at[activation]
	return ok
}

// certCache remembers client certificates whose chain to the cluster CA
// verified, for a minute or until they expire: an activation then checks
// only the request's signature (and revocation, every time). Bounded.
type certCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedCert
}

type cachedCert struct {
	cert  *x509.Certificate
	until time.Time
}

const certCacheSize = 4096

func (c *certCache) get(der []byte, now time.Time) *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[sha256.Sum256(der)]
	if !ok || now.After(e.until) {
		return nil
	}
	return e.cert
}

func (c *certCache) put(cert *x509.Certificate, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= certCacheSize {
		c.m = map[[32]byte]cachedCert{}
	}
	until := now.Add(time.Minute)
	if cert.NotAfter.Before(until) {
		until = cert.NotAfter
	}
	c.m[sha256.Sum256(cert.Raw)] = cachedCert{cert: cert, until: until}
}
