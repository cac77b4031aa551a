package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The cluster part runs real custosd processes.
func TestClusterDemo(t *testing.T) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("softhsm2-util not found and CUSTOS_REQUIRE_SOFTHSM is set")
		}
		t.Skip("softhsm2-util not installed")
	}
	custosd := filepath.Join(t.TempDir(), "custosd")
	if out, err := exec.Command("go", "build", "-o", custosd, "github.com/custos-eu/custos/cmd/custosd").CombinedOutput(); err != nil {
		t.Fatalf("build custosd: %v\n%s", err, out)
	}
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), &out, &errOut, []string{"demo", "--part", "cluster", "--dir", dir, "--custosd", custosd}); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	for _, want := range []string{
		"all 3 nodes are ready",
		"$ custos officer propose kek.create --kek demo",
		"status     pending: 1 of 2 approvals",
		"Approved by bob.",
		"status     executed",
		"version 1    active",
		"split      any 2 of 3 node shares: node-1 (share 1), node-2 (share 2), node-3 (share 3)",
		"statements verified: node-1, node-2, node-3 signed",
		`wrapped 32-byte data key with KEK "demo" version 1; receipt: log entry`,
		`unwrapped 32-byte data key with KEK "demo" version 1; receipt: log entry`,
		"Recovered data key matches the original: yes",
		"unwrap_failed",
		"$ custos dev grab-shares --as node-1",
		"node-2 refused: peer node-2: release_refused",
		"node-3 refused: peer node-3: release_refused",
		"release_no_activation",
		"No share left a node",
		"both signatures verified",
		"inclusion proof of",
		"(kek.unwrap by custos://dev/agent/dev-agent",
		"Recovered data key matches the original: yes (2 of 3 node shares suffice)",
		"took over; appends were acknowledged again",
		"rejoined",
		"verified: nothing acknowledged before the crash was rewritten",
		`bucket "custos-offsite" has Object Lock enabled`,
		"refused by policy (residency)",
		"The bucket holds 0 objects: nothing was sent.",
		"target     offsite-us (s3, region US, jurisdiction US)",
		"transfer   receipt: log entry",
		"locked     GOVERNANCE until",
		"the tree is identical to backup/payroll",
		"matches the manifest; included under the checkpoint",
		"transfer_mismatch",
		"Refused before a byte of it was read: backup/planted is empty.",
		`from "offsite-us": ok`,
		"(RTO 5m0s)",
		"Pinned the key-op log of cluster",
		"OK: ",
		"1 backup.transfer",
		"1 backup.drill",
		"versitygw (pid",
		"Cluster demo complete.",
		"Cluster stopped",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
