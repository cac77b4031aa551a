// Package backup is the root of the bundled backup agent: a directory
// becomes an age-encrypted archive whose file key only the Custos cluster
// can unwrap, sent only where the dataset's policy allows. Its packages
// import only the client-side leaves of keysvc (client, wrapkey,
// identity, ledger), never keysvc itself.
//
// What exists:
//
//   - custosage: the age recipient (online through the API, or offline
//     with a KEK version's public key) and identity (unwrap through the
//     API) for the "custos" stanza, which carries the wrapkey blob of the
//     file key and the context it is bound to.
//   - policy: the strict TOML policy file (datasets, targets) and Decide,
//     which refuses an eu-only dataset to a target outside the EU/EEA (by
//     region or jurisdiction) and any target the policy does not name.
//   - archive: walk → PAX tar → zstd (independent frames compressed in
//     parallel) → age, streaming with bounded memory; the clear manifest
//     (ids, sizes, ciphertext SHA-256, KEK, policy decision, receipt; no
//     file names) and the encrypted index (names, modes, mtimes, per-file
//     SHA-256); Restore (confined with os.Root, staged, moved into place
//     only after the whole archive verified), Verify (decrypting, writes
//     nothing) and VerifyCiphertext (hashes only).
//   - target: the Target interface (put, get, list, delete; retention and
//     legal hold where the store enforces them) and the local-directory
//     implementation; s3 implements it for S3-compatible stores.
//   - keysvc/keysvctest/agentcluster (outside backup, which imports only keysvc
//     leaves): an in-memory cluster with a KEK, for tests only.
//
// The age-plugin-custos command (cmd/age-plugin-custos) lets a stock age
// decrypt an archive through the cluster.
//
// The agent's commands (custos backup run, list, restore, verify, drill,
// prune, status) live in cmd/custos; a restore proves an archive's manifest
// against its transfer entry in the key-op log before reading it.
package backup
