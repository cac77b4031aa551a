package keysvc_test

import (
	"os"

	"golang.org/x/sys/cpu"
)

// As custosd does (cmd/custosd/cpu_amd64.go): circl's portable code, so
// the benchmarks measure what the daemon runs.
func init() {
	if os.Getenv("CUSTOS_CIRCL_AVX2") != "1" {
		cpu.X86.HasAVX2 = false
	}
}
