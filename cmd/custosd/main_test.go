package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/internal/testwait"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }

func TestUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := `node_id = "n1"
region = "DE"
cluster = "test"
data_dir = "` + filepath.Join(dir, "data") + `"
bootstrap = true
allowed_regions = ["DE"]
[api]
listen = "127.0.0.1:0"
[raft]
listen = "127.0.0.1:0"
[hsm]
module = "/nonexistent/libsofthsm2.so"
token_label = "n1"
pin_env = "CUSTOSD_TEST_PIN"
[tls]
cert = "` + filepath.Join(dir, "missing.pem") + `"
ca = "` + filepath.Join(dir, "ca.pem") + `"
`
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no flag", nil, "usage: custosd -config FILE"},
		{"extra args", []string{"-config", "x", "y"}, "usage"},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.toml")}, "nope.toml"},
		{"unknown key", []string{"-config", write("typo.toml", "bogus = 1\n"+valid)}, `unknown key "bogus"`},
		{"invalid", []string{"-config", write("invalid.toml", strings.Replace(valid, `region = "DE"`, `region = ""`, 1))}, "region is required"},
		{"describe and csr", []string{"-config", write("both.toml", valid), "-describe", "-csr"}, "usage"},
		{"HSM module", []string{"-config", write("hsm.toml", valid)}, "/nonexistent/libsofthsm2.so"},
		{"HSM module, csr", []string{"-config", write("hsm.toml", valid), "-csr"}, "/nonexistent/libsofthsm2.so"},
		// A configuration of the previous release, with the node's key file.
		{"tls.key", []string{"-config", write("old.toml", strings.Replace(valid, "[tls]\n", "[tls]\nkey = \"/etc/custos/key.pem\"\n", 1))},
			"node TLS keys live in the HSM: remove tls.key, run `custosd -config FILE -csr` and have the cluster CA sign it"},
		{"unspecified advertise, csr", []string{"-config", write("any.toml", strings.Replace(valid, "[api]\nlisten = \"127.0.0.1:0\"", "[api]\nlisten = \"0.0.0.0:8200\"", 1)), "-csr"},
			`api.advertise "0.0.0.0:8200" is not an address others can dial`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tc.args, io.Discard, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

// node is one in-process custosd of a test cluster.
type node struct {
	id, region, cfgPath, api string
	log                      *testlog.Buffer
	cancel                   context.CancelFunc
	done                     chan int
	stopped                  bool
	code                     int
}

func (n *node) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done, n.log, n.stopped = cancel, make(chan int, 1), &testlog.Buffer{}, false
	go func() { n.done <- run(ctx, []string{"-config", n.cfgPath}, io.Discard, n.log) }()
}

// stop sends the equivalent of SIGTERM and returns the exit status.
func (n *node) stop(t *testing.T) int {
	t.Helper()
	if n.stopped {
		return n.code
	}
	n.cancel()
	select {
	case n.code = <-n.done:
		n.stopped = true
		return n.code
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not shut down in 30s; log:\n%s\ngoroutines:\n%s", n.id, n.log.String(), buf)
		return -1
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A three-node cluster of real daemons (SoftHSM tokens, mutual TLS, raft
// over TCP) in this process: the first bootstraps, the others join
// through it; a canary written through a follower commits; a graceful stop
// exits 0; a restarted node rejoins from its state without joining again.
func TestDaemonCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemons")
	}
	tokens := hsmtest.SoftHSM(t, "d1", "d2", "d3")
	pki := httpapitest.NewPKI(t, "test")
	dir := t.TempDir()
	caFile := writeFile(t, filepath.Join(dir, "ca.pem"), pki.CA.CertPEM())
	regions := []string{"DE", "FR", "NL"}
	var nodes []*node
	for i, region := range regions {
		id := fmt.Sprintf("n%d", i+1)
		apiAddr := freeAddr(t)
		cfg := nodecfg.Config{
			NodeID: id, Region: region, Cluster: "test", DataDir: filepath.Join(dir, id),
			API:  nodecfg.APIListener{Listen: apiAddr},
			Raft: nodecfg.RaftListener{Listen: freeAddr(t)},
			HSM:  nodecfg.HSM{Module: tokens[i].Module, TokenLabel: tokens[i].TokenLabel, PINFile: tokens[i].PINFile},
			TLS:  nodecfg.TLS{Cert: filepath.Join(dir, id+"-cert.pem"), CA: caFile},
			Log:  nodecfg.Log{Level: "debug", Format: "json"},
		}
		if i == 0 {
			cfg.Bootstrap, cfg.AllowedRegions = true, regions
		} else {
			cfg.Join = []string{nodes[0].api}
		}
		n := &node{id: id, region: region, cfgPath: filepath.Join(dir, id+".toml"), api: "https://" + apiAddr}
		if err := cfg.Write(n.cfgPath); err != nil {
			t.Fatal(err)
		}
		certify(t, pki.CA, n.cfgPath, cfg.TLS.Cert)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.start(t)
	}
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s log:\n%s", n.id, n.log.String())
			}
		}
		for _, n := range nodes {
			n.stop(t)
		}
	}()

	ops, err := client.New(client.Config{
		Endpoints: []string{nodes[2].api, nodes[1].api, nodes[0].api},
		TLSFiles:  pki.Issue(t, identity.RoleOperator, "ops", "DE"), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	ctx := context.Background()
	waitFor(t, 60*time.Second, func() error {
		for _, n := range nodes {
			if _, err := ops.NodeHealth(ctx, n.api); err != nil {
				return err
			}
		}
		st, err := ops.Cluster(ctx)
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range st.Members {
			if m.Voter && m.Registered {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	})

	// A write through a follower (node 3 is first in the list).
	idx, err := ops.Canary(ctx)
	if err != nil {
		t.Fatalf("canary: %v", err)
	}
	note, err := ops.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ops.NodeKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, signer, err := ledger.VerifyCheckpoint(note, ledger.Origin("test"), keys...)
	if err != nil || cp.Size <= idx || !strings.HasPrefix(signer, "custos/test/n") {
		t.Fatalf("checkpoint %+v by %s: %v", cp, signer, err)
	}

	// Graceful stop and restart of a joined node: it rejoins from its state.
	if code := nodes[1].stop(t); code != 0 {
		t.Fatalf("n2 exit %d", code)
	}
	if !strings.Contains(nodes[1].log.String(), "shutting down") {
		t.Error("n2 did not log its shutdown")
	}
	nodes[1].start(t)
	waitFor(t, 60*time.Second, func() error {
		_, err := ops.NodeHealth(ctx, nodes[1].api)
		return err
	})
	if !strings.Contains(nodes[1].log.String(), "already a member") {
		t.Errorf("restarted n2 did not recognise its membership:\n%s", nodes[1].log.String())
	}
	if _, err := ops.Canary(ctx); err != nil {
		t.Errorf("canary after the restart: %v", err)
	}
	for _, n := range nodes {
		if code := n.stop(t); code != 0 {
			t.Errorf("%s exit %d", n.id, code)
		}
	}
}

// certify has the node of cfgPath make its certificate request (custosd
// -csr) and writes the certificate the CA issues from it to certFile, as an
// operator does: only the certificate, the key stays in the node's HSM.
func certify(t *testing.T, ca *identity.CA, cfgPath, certFile string) {
	t.Helper()
	certPEM, err := ca.IssueCSR(csrOf(t, cfgPath), identity.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, certPEM)
}

// csrOf runs custosd -config cfgPath -csr and returns its output.
func csrOf(t *testing.T, cfgPath string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-config", cfgPath, "-csr"}, &stdout, &stderr); code != 0 {
		t.Fatalf("custosd -csr: exit %d:\n%s", code, stderr.String())
	}
	return stdout.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// waitFor polls cond until it returns nil, failing the test after d.
func waitFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	testwait.Until(t, d, "condition", cond)
}
