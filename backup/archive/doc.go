// Package archive makes, restores and verifies Custos backup archives.
//
// An archive is three objects:
//
//   - the archive: an age file (filippo.io/age, STREAM of 64 KiB chunks)
//     of a zstd stream of a PAX tar. The zstd stream is a concatenation of
//     independent frames, one per chunk of tar (DefaultChunkSize, 1 MiB),
//     compressed on all cores at once; any zstd decoder reads it as one
//     stream, so `age -d | zstd -d | tar -x` works too.
//   - the index: an age file of JSON lines: a header (format, archive id,
//     dataset), one record per tar entry in the same order (name, type,
//     mode, mtime, size, SHA-256, link target), and a trailer (count).
//     File names and hashes travel only here, encrypted.
//   - the manifest (clear JSON, Manifest): archive id, dataset,
//     classification, KEK id/version and the wrap's log index, size and
//     SHA-256 of both ciphertexts, counts and sizes, the policy decision
//     and the upload's log receipt. It names no file.
//
// Both age files are encrypted to the same recipient, normally a
// custosage recipient under WrapContext (dataset, classification,
// archive id): each gets its own file key, wrapped by the cluster.
//
// Restore and Verify read the archive and index in lockstep, so memory
// does not grow with the number of files: every tar entry must be the
// index's next record (entries strictly increasing in path order, so
// nothing is repeated or reordered), every file's content must match its
// SHA-256, and at the end both ciphertexts must match the manifest and
// the streams must end exactly (age detects truncation at its final
// chunk). Restore extracts under a staging directory inside the target
// through os.Root and moves the tree into place only after all of this
// has passed; any failure removes the staging directory, and integrity
// failures wrap ErrIntegrity.
//
// Memory: Create holds about 2 × (workers + 1) chunks plus the zstd
// encoders' state (peak Go heap ≈ 24-37 MiB at 1 MiB chunks on 2 cores);
// Restore and Verify about 20 MiB plus up to 3 × cores + 1 buffers of 1 MiB:
// files up to 1 MiB are checked and written on one goroutine per core while
// the archive is decrypted and decompressed on others; larger files stream.
package archive
