// What a node remembers to keep share releases cheap and single: the
// activations it released for lately, and client certificates whose chain
// it verified lately.

package keysvc

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

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
