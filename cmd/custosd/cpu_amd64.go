package main

import (
	"os"

	"golang.org/x/sys/cpu"
)

// circl's AVX2 code for ML-KEM (and its 4-way Keccak) returns without
// VZEROUPPER, so on Intel CPUs every SSE instruction after it (SHA-NI in
// HKDF, AES-NI in AES-GCM) pays the AVX-SSE transition penalty until
// something clears the upper state. Measured on the 2-core Xeon this
// project is benchmarked on: X-Wing unwrap 133 µs with AVX2, 70 µs
// without; wrap 156 µs and 101 µs. So the daemon runs circl's portable
// code unless CUSTOS_CIRCL_AVX2=1 (for CPUs without the penalty, such as
// AMD Zen). Only packages reading golang.org/x/sys/cpu are affected; Go's
// own runtime and standard library keep their AVX2 paths.
func init() {
	if os.Getenv("CUSTOS_CIRCL_AVX2") != "1" {
		cpu.X86.HasAVX2 = false
	}
}
