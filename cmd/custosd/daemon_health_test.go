package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// A daemon with [health] addr serves /livez and /readyz there, plain
// HTTP, without a certificate and without cluster details; its /metrics
// carry the build, certificate, HSM and share metrics; the health
// listener goes away with the daemon.
func TestDaemonHealthAndMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon")
	}
	n, cfg, pki := startOneNode(t, func(cfg *nodecfg.Config) {
		cfg.Health.Addr = freeAddr(t)
	})
	plain := &http.Client{Timeout: 5 * time.Second}
	health := "http://" + cfg.Health.Addr
	fetch := func(c *http.Client, url string) (int, string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	waitFor(t, 60*time.Second, func() error {
		code, body, err := fetch(plain, health+"/readyz")
		if err == nil && (code != 200 || body != "ready\n") {
			err = fmt.Errorf("/readyz: %d %q", code, body)
		}
		return err
	})
	for _, p := range []string{"/livez", "/readyz"} {
		code, body, err := fetch(plain, health+p)
		if err != nil || code != 200 {
			t.Fatalf("%s: %d %v", p, code, err)
		}
		for _, leak := range []string{"n1", "DE", "test", cfg.API.Listen, cfg.Raft.Listen, "127.0.0.1"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s body %q names %q", p, body, leak)
			}
		}
	}
	if code, _, err := fetch(plain, health+"/v1/sys/cluster"); err != nil || code != 404 {
		t.Errorf("/v1/sys/cluster on the health port: %d %v", code, err)
	}

	ops := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(t, pki.Issue(t, identity.RoleOperator, "ops", "DE"))}}
	code, metrics, err := fetch(ops, n.api+"/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for _, re := range []string{
		`(?m)^custos_build_info\{go_version="go[^"]+",revision="[^"]*",version="[^"]+"\} 1$`,
		`(?m)^custos_cert_expiry_seconds\{cert="node"\} [0-9.e+]+$`,
		`(?m)^custos_cert_expiry_seconds\{cert="ca"\} [0-9.e+]+$`,
		// The TLS handshake of this very request signed with the node's key in its token.
		`(?m)^custos_hsm_op_seconds_count\{op="sign",token="` + regexp.QuoteMeta(cfg.HSM.TokenLabel) + `"\} [1-9][0-9]*$`,
		`(?m)^custos_hsm_errors_total\{op="seal",token="` + regexp.QuoteMeta(cfg.HSM.TokenLabel) + `"\} 0$`,
		`(?m)^custos_kek_shares_held 0$`,
		`(?m)^custos_kek_shares_unopenable 0$`,
		`(?m)^custos_kek_versions_below_threshold 0$`,
		`(?m)^custos_node_ready 1$`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("/metrics lacks %s", re)
		}
	}

	if code := n.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, _, err := fetch(plain, health+"/livez"); err == nil {
		t.Error("/livez still answers after the daemon stopped")
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
			t.Fatalf("%v: exit %d, stderr %s", args, code, stderr.String())
		}
		if !regexp.MustCompile(`^custosd \S+\n  revision: .+\n  time: +.+\n  go: +go1\.`).MatchString(stdout.String()) {
			t.Errorf("%v printed:\n%s", args, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-version", "-csr"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("-version -csr: exit %d, %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-version") {
		t.Errorf("-h: exit %d, %s", code, stderr.String())
	}
}
