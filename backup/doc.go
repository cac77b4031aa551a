// Package backup will be the bundled backup agent (tar → zstd → age, wrapped
// by Custos, to local and S3 targets with restore and drills). It has no code
// yet; it may import only the client-side leaf packages of keysvc.
package backup
