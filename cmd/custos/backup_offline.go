package main

// Offline wrap for `custos backup run`: the archive's file key is wrapped
// with the KEK version's public key, without a wrap call, once the key is
// checked against the key-op log through a pinned trust file (made by
// `custos audit checkpoint`; agent.ProveKEKKey). Only the unwrap at
// restore goes through the cluster (authorised and logged).

import (
	"fmt"
	"os"

	"github.com/custos-eu/custos/backup/agent"
	"github.com/custos-eu/custos/backup/policy"
	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/client"
)

// envTrust names the trust file `backup run` checks an offline wrap's KEK
// public key with, and restore, verify and drill the transfer entry, when
// --trust is not given.
const envTrust = "CUSTOS_TRUST"

// kekKeySource is what the offline wrap asks the cluster (*client.Client).
type kekKeySource = agent.KEKKeySource

// offlineKeySource returns where the offline wrap gets the key and proofs
// from: the API client (tests interpose).
var offlineKeySource = func(c *client.Client) kekKeySource { return c }

// offlineTrust reads the trust file an offline wrap of ds proves the KEK's
// key with: trustPath (--trust), or $CUSTOS_TRUST. Online, none (nil).
func offlineTrust(ds *policy.Dataset, trustPath string) (*audit.Trust, error) {
	if ds.WrapMode() != policy.WrapOffline {
		return nil, nil
	}
	if trustPath == "" {
		trustPath = os.Getenv(envTrust)
	}
	if trustPath == "" {
		return nil, fmt.Errorf("dataset %q wraps offline: give the trust file with --trust FILE (or $%s), made by custos audit checkpoint, to check the kek's public key against the log; nothing was sent", ds.Name, envTrust)
	}
	pt, err := readTrust(trustPath)
	if err != nil {
		return nil, fmt.Errorf("offline wrap: trust file: %w; nothing was sent", err)
	}
	return pt.t, nil
}
