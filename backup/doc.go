// Package backup is the root of the bundled backup agent: a directory
// becomes an age-encrypted archive whose file key only the Custos cluster
// can unwrap, sent only where the dataset's policy allows, and restored
// only once the key-op log shows that this agent uploaded exactly it. Its
// packages import only the client-side leaves of keysvc (client, audit,
// ledger, wrapkey, identity), never node code.
//
// The tree:
//
//   - agent: the use cases the custos backup commands call — Run (policy
//     decision, upload, transfer attestation, manifest), List and Find
//     (the store layout on a target), Restore, Verify and Drill (each
//     after proving the manifest against its transfer entry), Prune and
//     Status; the key proof of an offline wrap. It takes a loaded policy,
//     opened targets, the cluster as small interfaces and a checked
//     *audit.Trust; flags, files and printing stay in cmd/custos.
//   - policy: the strict TOML policy file (datasets, targets) and Decide,
//     which refuses an eu-only dataset to a target outside the EU/EEA (by
//     region or jurisdiction) and any target the policy does not name.
//   - archive: walk → PAX tar → zstd → age, streaming with bounded memory;
//     the clear manifest and the encrypted index; Restore, Verify and
//     VerifyCiphertext; CheckTransfer, which matches a manifest with its
//     transfer entry.
//   - custosage: the age recipient (online through the API, or offline
//     with a KEK version's public key) and identity (unwrap through the
//     API) for the "custos" stanza.
//   - target: the Target interface (put, get, list, delete; retention and
//     legal hold where the store enforces them) and the local directory;
//     s3 implements it for S3-compatible stores (s3test and versitygw run
//     a real one for tests and the demo).
//
// Tests that need a cluster use keysvc/keysvctest/agentcluster, an
// in-memory one with a KEK (outside backup: it imports node code). The
// age-plugin-custos command lets a stock age decrypt an archive through
// the cluster.
package backup
