// The deployment runbook of docs/operations.md, followed on loopback: three
// custosd processes, three SoftHSM tokens made with softhsm2-util, the CA and
// every certificate from `custos pki`, no `custos dev up`. The steps are the
// functions of deploy/runbook/runbook.sh, which the docs quote; a second
// test checks that they still do.

package softhsmtests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/hsm/softhsm"
	"github.com/custos-eu/custos/internal/testwait"
)

const runbookScript = "../deploy/runbook/runbook.sh"

var (
	custosOnce sync.Once
	custosPath string
	custosErr  error
)

// custosBinary builds cmd/custos once per test binary.
func custosBinary(t testing.TB) string {
	t.Helper()
	custosOnce.Do(func() {
		dir, err := os.MkdirTemp("", "custos-cli-")
		if err != nil {
			custosErr = err
			return
		}
		custosPath = filepath.Join(dir, "custos")
		if out, err := exec.Command("go", "build", "-o", custosPath, "github.com/custos-eu/custos/cmd/custos").CombinedOutput(); err != nil {
			custosErr = fmt.Errorf("go build custos: %v\n%s", err, out)
		}
	})
	if custosErr != nil {
		t.Fatal(custosErr)
	}
	return custosPath
}

// loopbackPorts returns n ports free on 127.0.0.1 a moment ago.
func loopbackPorts(t *testing.T, n int) []int {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

type runbookNode struct {
	id, region string
	env        []string
}

func TestRunbook(t *testing.T) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("softhsm2-util is not on PATH")
		}
		t.Skip("softhsm2-util is not on PATH")
	}
	custosd, custos := custosdBinary(t), custosBinary(t)
	root := t.TempDir()
	secret := func(name, v string) string {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ports := loopbackPorts(t, 9)
	var addrs []string
	for i := range 3 {
		addrs = append(addrs, "https://127.0.0.1:"+strconv.Itoa(ports[2*i]))
	}
	common := []string{
		"CLUSTER=prod", "CUSTOS=" + custos, "CUSTOSD=" + custosd, "CA_DIR=" + filepath.Join(root, "ca"),
		"CA_PASSPHRASE_FILE=" + secret("ca.pass", "runbook CA passphrase"),
		"OFFICER_PASSPHRASE_FILE=" + secret("officer.pass", "runbook officer passphrase"),
		"ADMIN=" + filepath.Join(root, "admin"), "ADDRS=" + strings.Join(addrs, ","),
		`REGIONS="FR", "DE", "NL"`, "NODE_HOST=127.0.0.1",
	}
	var nodes []runbookNode
	// Each machine has its own SoftHSM, its token directory under DATA (step 2).
	module, err := softhsm.FindModule()
	if err != nil {
		t.Fatal(err)
	}
	for i, region := range []string{"FR", "DE", "NL"} {
		id := fmt.Sprintf("node-%d", i+1)
		dir := filepath.Join(root, id)
		env := append(append([]string{}, common...), "HSM_MODULE="+module, "RUN_AS=", "NODE_ID="+id, "REGION="+region,
			"API_PORT="+strconv.Itoa(ports[2*i]), "RAFT_PORT="+strconv.Itoa(ports[2*i+1]), "HEALTH_PORT="+strconv.Itoa(ports[6+i]),
			"ETC="+filepath.Join(dir, "etc"), "DATA="+filepath.Join(dir, "data"))
		if i > 0 {
			env = append(env, "JOIN="+addrs[0])
		}
		nodes = append(nodes, runbookNode{id: id, region: region, env: env})
	}
	step := func(n runbookNode, s string, extra ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", runbookScript, s)
		cmd.Env = append(append(os.Environ(), n.env...), extra...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("runbook step %s on %s: %v\n%s", s, n.id, err, out)
		}
		t.Logf("step %s on %s:\n%s", s, n.id, out)
		return string(out)
	}

	step(nodes[0], "1")
	for _, n := range nodes {
		step(n, "2")
		step(n, "3")
		step(n, "4")
		out := step(n, "5")
		if !strings.Contains(out, "custos://prod/node/"+n.id+"?region="+n.region) || !strings.Contains(out, "issued by the given CA") {
			t.Fatalf("step 5 on %s issued no certificate for the node:\n%s", n.id, out)
		}
		if keys, _ := filepath.Glob(filepath.Join(root, n.id, "etc", "*.key")); len(keys) > 0 {
			t.Fatalf("a node holds key files: %v", keys)
		}
	}
	step(nodes[0], "7")
	for _, n := range nodes {
		startRunbookNode(t, n)
		if n.id == "node-1" {
			waitRunbook(t, nodes[0], "Members: 1")
		}
	}
	waitRunbook(t, nodes[0], "Members: 3")
	// Each node's load-balancer health answers, without a certificate.
	for i, n := range nodes {
		url := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[6+i])
		testwait.Until(t, time.Minute, n.id+" /readyz", func() error {
			resp, err := http.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s", resp.Status)
			}
			return nil
		})
	}
	step(nodes[0], "8")
	for _, o := range []string{"alice", "bob", "carol"} {
		step(nodes[0], "9", "OFFICER="+o)
	}
	if out := step(nodes[0], "10"); !strings.Contains(out, "Cluster initialized: quorum 2 of 3 officers") {
		t.Fatalf("step 10: %s", out)
	}
	step(nodes[0], "11")
	if out := step(nodes[0], "12"); !strings.Contains(out, `KEK "first"`) {
		t.Fatalf("step 12 shows no KEK first:\n%s", out)
	}
	step(nodes[0], "13")
}

// startRunbookNode runs step 6 (it execs custosd) in the background, and
// stops it by its pid when the test ends.
func startRunbookNode(t *testing.T, n runbookNode) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), n.id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", runbookScript, "6")
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("%s log (tail):\n%s", n.id, b)
		}
		logf.Close()
	})
}

// waitRunbook runs `custos status` as the operator until its output has
// want, for at most three minutes (a loaded CI machine forms a cluster slowly).
func waitRunbook(t *testing.T, n runbookNode, want string) {
	t.Helper()
	var env, custos string
	for _, kv := range n.env {
		if v, ok := strings.CutPrefix(kv, "ADMIN="); ok {
			env = filepath.Join(v, "operator-ops.env")
		}
		if v, ok := strings.CutPrefix(kv, "CUSTOS="); ok {
			custos = v
		}
	}
	// Step 8 writes the env files; until then the status check uses its own.
	if _, err := os.Stat(env); err != nil {
		addrs, admin := "", ""
		for _, kv := range n.env {
			if v, ok := strings.CutPrefix(kv, "ADDRS="); ok {
				addrs = v
			}
			if v, ok := strings.CutPrefix(kv, "ADMIN="); ok {
				admin = v
			}
		}
		env = filepath.Join(t.TempDir(), "operator.env")
		os.WriteFile(env, fmt.Appendf(nil, "export CUSTOS_ADDR=%q\nexport CUSTOS_CA=%q\nexport CUSTOS_CLIENT_CERT=%q\nexport CUSTOS_CLIENT_KEY=%q\n",
			addrs, filepath.Join(admin, "ca.pem"), filepath.Join(admin, "operator-ops.pem"), filepath.Join(admin, "operator-ops.key")), 0o600)
	}
	deadline := time.Now().Add(3 * time.Minute)
	var last []byte
	for time.Now().Before(deadline) {
		last, _ = exec.Command(custos, "status", "--env", env).CombinedOutput()
		if strings.Contains(string(last), want) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("custos status never showed %q; last:\n%s", want, last)
}

// TestRunbookDocQuotesScript: every numbered step of the runbook in
// docs/operations.md quotes the lines of its function in runbook.sh, and
// every function of the script is a step of the docs, so the two cannot
// drift apart silently.
func TestRunbookDocQuotesScript(t *testing.T) {
	script, err := os.ReadFile(runbookScript)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	// The script's steps: number -> body lines.
	bodies := map[int][]string{}
	fnRE := regexp.MustCompile(`^step_(\d+)_[a-z_]+\(\) \{$`)
	cur := 0
	for _, line := range strings.Split(string(script), "\n") {
		if m := fnRE.FindStringSubmatch(line); m != nil {
			cur, _ = strconv.Atoi(m[1])
			continue
		}
		if line == "}" {
			cur = 0
		}
		if cur > 0 && strings.TrimSpace(line) != "" {
			bodies[cur] = append(bodies[cur], strings.TrimSpace(line))
		}
	}
	if len(bodies) != 13 {
		t.Fatalf("runbook.sh has %d steps, want 13", len(bodies))
	}
	// The doc's steps: "### Step N" followed by a ```sh block.
	headRE := regexp.MustCompile(`^### Step (\d+)\b`)
	quoted := map[int][]string{}
	step, inBlock := 0, false
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	for sc.Scan() {
		line := sc.Text()
		if m := headRE.FindStringSubmatch(line); m != nil {
			step, _ = strconv.Atoi(m[1])
			continue
		}
		switch {
		case step > 0 && !inBlock && line == "```sh":
			inBlock = true
		case inBlock && line == "```":
			inBlock, step = false, 0
		case inBlock && strings.TrimSpace(line) != "":
			quoted[step] = append(quoted[step], strings.TrimSpace(line))
		}
	}
	for n := 1; n <= 13; n++ {
		if len(quoted[n]) == 0 {
			t.Errorf("docs/operations.md has no \"### Step %d\" with a ```sh block", n)
			continue
		}
		if strings.Join(quoted[n], "\n") != strings.Join(bodies[n], "\n") {
			t.Errorf("step %d: the docs quote\n%s\nbut runbook.sh says\n%s", n, strings.Join(quoted[n], "\n"), strings.Join(bodies[n], "\n"))
		}
	}
	for n := range quoted {
		if bodies[n] == nil {
			t.Errorf("docs/operations.md has a step %d that runbook.sh does not", n)
		}
	}
}
