// Package archive makes, restores and verifies Custos backup archives.
//
// An archive is three objects:
//
//   - the archive: an age file (filippo.io/age, STREAM of 64 KiB chunks)
//     of a zstd stream of a PAX tar. The zstd stream is a concatenation of
//     independent frames, one per chunk of tar (DefaultChunkSize, 2 MiB),
//     compressed on all cores at once by libzstd through cgo (Compressor;
//     built without cgo, by klauspost/compress); a frame's window is at
//     most its chunk. Any zstd decoder reads the frames as one stream, so
//     `age -d | zstd -d | tar -x` works too.
//   - the index: an age file of zstd-compressed JSON lines (format /2;
//     the uncompressed /1 of earlier releases is still read): a header
//     (format, archive id, dataset), one record per tar entry in the same
//     order (name, type, mode, mtime, size, SHA-256, link target), and a
//     trailer (count). File names and hashes travel only here, encrypted.
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
// Memory: Create holds at most (2 × workers + 3) chunks
// (CreateBufferBytes: 14 MiB at 2 MiB chunks on 2 cores; C memory with
// cgo, outside the Go heap) plus about 1 MiB of libzstd state per worker
// and a few MiB besides; Restore and Verify hold up to 3 × cores + 1
// buffers of 1 MiB and the decompressor's window (RestoreBufferBytes)
// plus a few MiB: files up to 1 MiB are checked and written on one
// goroutine per core while the archive is decrypted and decompressed on
// others; larger files stream.
package archive
