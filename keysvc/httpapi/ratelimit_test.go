package httpapi_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
)

// newLimitedEnv is newEnv with limits.
func newLimitedEnv(t *testing.T, limits httpapi.RateLimits) *env {
	t.Helper()
	pki := httpapitest.NewPKI(t, "test")
	e := &env{pki: pki, fake: httpapitest.NewFake(pki.Cluster, "n1", "DE", ""), logs: &testlog.Buffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = pki.Serve(t, "n1", "DE", httpapi.New(e.fake, httpapi.Options{Logger: log, RateLimits: limits}))
	e.fake.SetAPIAddr(e.srv.URL)
	return e
}

// TestRateLimitPerIdentity: one identity over its read limit gets 429
// rate_limited with Retry-After; another identity is served meanwhile.
func TestRateLimitPerIdentity(t *testing.T) {
	e := newLimitedEnv(t, httpapi.RateLimits{Read: httpapi.RateLimit{Rate: 0.01, Burst: 5}})
	flood, other := e.auditor(t), e.operator(t)
	limited := 0
	for range 10 {
		resp, body := call(t, flood, http.MethodGet, e.srv.URL+"/v1/sys/cluster", nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			wantError(t, resp, body, http.StatusTooManyRequests, errcode.RateLimited)
			secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || secs < 1 {
				t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			limited++
		}
	}
	if limited != 5 {
		t.Fatalf("%d of 10 reads limited, want 5 (burst 5)", limited)
	}
	if resp, body := call(t, other, http.MethodGet, e.srv.URL+"/v1/sys/cluster", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("another identity: %d %s", resp.StatusCode, body)
	}
	// Another class draws from its own bucket: a POST is not a read.
	resp, body := call(t, flood, http.MethodPost, e.srv.URL+"/v1/sys/canary", []byte(`{}`))
	if resp.StatusCode == http.StatusTooManyRequests {
		t.Fatalf("canary limited by the read bucket: %s", body)
	}
}

// TestRateLimitRefusals: a client whose requests keep being refused is
// answered 429 on every route once its refusal bucket is empty, without
// reaching the handlers (nothing more to log).
func TestRateLimitRefusals(t *testing.T) {
	e := newLimitedEnv(t, httpapi.RateLimits{Refused: httpapi.RateLimit{Rate: 0.01, Burst: 3}})
	agent := e.agent(t)
	for range 3 { // the agent role may not read metrics: 403 each
		resp, body := call(t, agent, http.MethodGet, e.srv.URL+"/metrics", nil)
		wantError(t, resp, body, http.StatusForbidden, errcode.Forbidden)
	}
	for _, path := range []string{"/metrics", "/v1/sys/cluster"} {
		resp, body := call(t, agent, http.MethodGet, e.srv.URL+path, nil)
		wantError(t, resp, body, http.StatusTooManyRequests, errcode.RateLimited)
	}
	if resp, body := call(t, e.auditor(t), http.MethodGet, e.srv.URL+"/v1/sys/cluster", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("another identity: %d %s", resp.StatusCode, body)
	}
}

// TestClientWaitsOutShortLimits: the SDK waits out a Retry-After of a
// second and succeeds; a limit it cannot wait out is an *APIError with
// RetryAfter.
func TestClientWaitsOutShortLimits(t *testing.T) {
	e := newLimitedEnv(t, httpapi.RateLimits{Read: httpapi.RateLimit{Rate: 2, Burst: 1}})
	c := e.sdk(t, identity.RoleAuditor, "audit", "NL")
	for range 3 {
		if _, err := c.Cluster(context.Background()); err != nil {
			t.Fatalf("status under a short limit: %v", err)
		}
	}
	slow := newLimitedEnv(t, httpapi.RateLimits{Read: httpapi.RateLimit{Rate: 0.01, Burst: 1}})
	c = slow.sdk(t, identity.RoleAuditor, "audit", "NL")
	if _, err := c.Cluster(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := c.Cluster(context.Background())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != errcode.RateLimited || ae.RetryAfter < 10*time.Second {
		t.Fatalf("got %v, want rate_limited with a long RetryAfter", err)
	}
}
