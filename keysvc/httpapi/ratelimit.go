// Per-identity rate limits: a token bucket per verified client identity and
// route class, and one for refusals, so that no client can turn the API
// into an unbounded stream of work or of log entries.

package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"golang.org/x/time/rate"
)

// RateLimit is one token bucket: Rate requests per second on average, Burst
// at once. A zero Rate takes the class's default; a negative Rate means no
// limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

// RateLimits are the per-identity limits of each route class (see
// DefaultRateLimits). Every identity has its own buckets: one client over
// its limit does not slow another.
type RateLimits struct {
	Read     RateLimit // GET routes: status, log, proofs, KEKs, ceremonies, metrics
	KeyOp    RateLimit // wrap, unwrap, datakey, rewrap and their batches (a batch counts once)
	Ceremony RateLimit // cluster init, proposals and approvals
	Admin    RateLimit // canary, join, attestations
	// Refused is spent by every refused request (a 4xx answer other than
	// 429): when it is empty the identity is answered 429 on every route
	// until it refills, which bounds how fast one client can make a node
	// log denials.
	Refused RateLimit
}

// DefaultRateLimits are the limits a zero RateLimits takes. KeyOp is above
// what one node serves on a small machine: it stops a runaway client from
// starving others, not a busy agent.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Read:     RateLimit{Rate: 200, Burst: 400},
		KeyOp:    RateLimit{Rate: 5000, Burst: 10000},
		Ceremony: RateLimit{Rate: 5, Burst: 20},
		Admin:    RateLimit{Rate: 20, Burst: 50},
		Refused:  RateLimit{Rate: 10, Burst: 100},
	}
}

// Unlimited are limits that never answer 429, for tests that send many
// requests, refused ones included, on purpose.
func Unlimited() RateLimits {
	off := RateLimit{Rate: -1}
	return RateLimits{Read: off, KeyOp: off, Ceremony: off, Admin: off, Refused: off}
}

func (l RateLimits) withDefaults() RateLimits {
	d := DefaultRateLimits()
	for _, p := range []struct{ v, d *RateLimit }{
		{&l.Read, &d.Read}, {&l.KeyOp, &d.KeyOp}, {&l.Ceremony, &d.Ceremony}, {&l.Admin, &d.Admin}, {&l.Refused, &d.Refused},
	} {
		if p.v.Rate == 0 {
			*p.v = *p.d
		}
		if p.v.Burst < 1 {
			p.v.Burst = max(1, int(math.Ceil(p.v.Rate)))
		}
	}
	return l
}

// Validate reports a limit that cannot work (NaN or infinite rate).
func (l RateLimits) Validate() error {
	for name, v := range map[string]RateLimit{"read": l.Read, "keyop": l.KeyOp, "ceremony": l.Ceremony, "admin": l.Admin, "refused": l.Refused} {
		if math.IsNaN(v.Rate) || math.IsInf(v.Rate, 0) || v.Burst < 0 {
			return fmt.Errorf("rate limit %s: rate %v burst %d: want a finite rate (negative for no limit) and a burst ≥ 0", name, v.Rate, v.Burst)
		}
	}
	return nil
}

// routeClass is what bucket a request draws from.
type routeClass int

const (
	classRead routeClass = iota
	classKeyOp
	classCeremony
	classAdmin
	numClasses
)

var classNames = [numClasses]string{"read", "keyop", "ceremony", "admin"}

// classOf classes a request by method and path: every POST under /v1/keks/
// is a key operation (KEKs change only by ceremony).
func classOf(r *http.Request) routeClass {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return classRead
	case strings.HasPrefix(p, "/v1/keks/"):
		return classKeyOp
	case p == "/v1/ceremonies" || strings.HasPrefix(p, "/v1/ceremonies/") || p == "/v1/sys/init":
		return classCeremony
	}
	return classAdmin
}

// buckets are one identity's.
type buckets struct {
	class   [numClasses]*rate.Limiter
	refused *rate.Limiter
	seen    time.Time
}

// limiter holds every identity's buckets, forgetting identities idle for
// longer than idleAfter (their buckets are full again by then).
type limiter struct {
	cfg   RateLimits
	now   func() time.Time
	mu    sync.Mutex
	ids   map[string]*buckets
	swept time.Time
}

const idleAfter = 10 * time.Minute

func newLimiter(cfg RateLimits, now func() time.Time) *limiter {
	return &limiter{cfg: cfg.withDefaults(), now: now, ids: make(map[string]*buckets)}
}

func bucket(l RateLimit) *rate.Limiter {
	if l.Rate < 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
}

func (l *limiter) get(id string, now time.Time) *buckets {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.ids {
			if now.Sub(b.seen) > idleAfter {
				delete(l.ids, k)
			}
		}
		l.swept = now
	}
	b := l.ids[id]
	if b == nil {
		b = &buckets{refused: bucket(l.cfg.Refused)}
		for i, c := range []RateLimit{l.cfg.Read, l.cfg.KeyOp, l.cfg.Ceremony, l.cfg.Admin} {
			b.class[i] = bucket(c)
		}
		l.ids[id] = b
	}
	b.seen = now
	return b
}

// admit takes a token of class c for identity id, or returns how long to
// wait: the refusal bucket must hold a token too.
func (l *limiter) admit(id string, c routeClass) (wait time.Duration, why string) {
	now := l.now()
	b := l.get(id, now)
	if t := b.refused.TokensAt(now); t < 1 && b.refused.Limit() != rate.Inf {
		return time.Duration((1 - t) / float64(b.refused.Limit()) * float64(time.Second)), "too many refused requests"
	}
	r := b.class[c].ReserveN(now, 1)
	if !r.OK() { // a burst of 0: never
		return time.Hour, classNames[c] + " requests are not allowed"
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, classNames[c] + " request rate over the limit"
	}
	return 0, ""
}

// refused spends a refusal token of identity id.
func (l *limiter) refused(id string) {
	now := l.now()
	l.get(id, now).refused.AllowN(now, 1)
}

// isRefusal reports whether an answer counts against the refusal bucket.
func isRefusal(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests
}

// limit applies the caller's rate limits: over them, 429 rate_limited with
// Retry-After (whole seconds, at least 1); every refused request spends a
// refusal token.
func (a *api) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := callerOf(r.Context()).actor.Identity
		if wait, why := a.limits.admit(id, classOf(r)); wait > 0 {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			a.writeError(w, r, &apiError{http.StatusTooManyRequests, errcode.RateLimited,
				fmt.Sprintf("%s for this identity; retry after %d s", why, secs)})
			return
		}
		next.ServeHTTP(w, r)
		if sw, ok := w.(*statusWriter); ok && isRefusal(sw.status()) {
			a.limits.refused(id)
		}
	})
}
