//go:build unix && !linux

package secmem

func dontDump([]byte) {}
