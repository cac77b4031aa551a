package main

// The trust restore, verify and drill prove an archive's transfer entry
// with (agent.ProveTransfer), and the proof in one line of output.

import (
	"fmt"
	"os"

	"github.com/custos-eu/custos/backup/agent"
	"github.com/custos-eu/custos/keysvc/audit"
)

// transferTrust reads the trust file at trustPath (--trust, or
// $CUSTOS_TRUST) and says how it checks the checkpoint; without one, nil:
// the node keys the cluster serves.
func transferTrust(trustPath string) (*audit.Trust, string, error) {
	if trustPath == "" {
		trustPath = os.Getenv(envTrust)
	}
	if trustPath == "" {
		return nil, "with the node keys the cluster serves (no trust file: give --trust to check it against a log you pinned)", nil
	}
	pt, err := readTrust(trustPath)
	if err != nil {
		return nil, "", fmt.Errorf("trust file: %w", err)
	}
	return pt.t, fmt.Sprintf("with the trust file %s (pinned at size %d)", trustPath, pt.t.Pinned().Size), nil
}

// describeTransfer is the proof in one line of output; how says how its
// checkpoint was checked.
func describeTransfer(p *agent.Transfer, how string) string {
	s := fmt.Sprintf("transfer entry %d matches the manifest; included under the checkpoint of size %d, verified %s", p.Entry.Index, p.Checkpoint.Size, how)
	if p.Legacy {
		s += "; the entry predates index and manifest hashes: the archive's hash is checked, and the index must match it record for record"
	}
	return s
}
