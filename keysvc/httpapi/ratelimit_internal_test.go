package httpapi

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         routeClass
	}{
		{"GET", "/v1/sys/health", classRead},
		{"GET", "/v1/keks/demo", classRead},
		{"POST", "/v1/keks/demo/unwrap", classKeyOp},
		{"POST", "/v1/keks/demo/unwrap/batch", classKeyOp},
		{"POST", "/v1/ceremonies", classCeremony},
		{"POST", "/v1/ceremonies/0123/approvals", classCeremony},
		{"POST", "/v1/sys/init", classCeremony},
		{"POST", "/v1/sys/canary", classAdmin},
		{"POST", "/v1/attestations", classAdmin},
		{"DELETE", "/v1/keks/demo", classKeyOp},
	} {
		if got := classOf(httptest.NewRequest(tc.method, tc.path, nil)); got != tc.want {
			t.Errorf("%s %s: class %s, want %s", tc.method, tc.path, classNames[got], classNames[tc.want])
		}
	}
}

// TestLimiterForgetsIdle: identities idle for idleAfter are forgotten, so
// the table does not grow with every identity ever seen.
func TestLimiterForgetsIdle(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	l := newLimiter(RateLimits{}, func() time.Time { return now })
	for i := range 100 {
		l.admit("id-"+strconv.Itoa(i), classRead)
	}
	now = now.Add(idleAfter + 2*time.Minute)
	l.admit("fresh", classRead)
	if n := len(l.ids); n != 1 {
		t.Fatalf("%d identities kept, want 1", n)
	}
}

// BenchmarkAdmit is the rate limiter's cost on every request (one
// identity, as a busy agent; parallel, as the server runs).
func BenchmarkAdmit(b *testing.B) {
	l := newLimiter(RateLimits{KeyOp: RateLimit{Rate: -1}}, time.Now)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w, _ := l.admit("custos://prod/agent/backup-1?region=DE", classKeyOp); w > 0 {
				b.Fatal("limited")
			}
		}
	})
}
