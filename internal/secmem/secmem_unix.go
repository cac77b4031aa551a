//go:build unix

package secmem

import (
	"os"

	"golang.org/x/sys/unix"
)

// alloc maps whole pages for n bytes, then locks them and, on Linux, keeps
// them out of core dumps; a failed lock leaves the mapping usable.
func alloc(n int) (mem []byte, locked bool, err error) {
	page := os.Getpagesize()
	size := (n + page - 1) / page * page
	mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, false, err
	}
	locked = unix.Mlock(mem) == nil
	dontDump(mem)
	return mem, locked, nil
}

func free(mem []byte, locked bool) {
	clear(mem)
	if locked {
		_ = unix.Munlock(mem)
	}
	_ = unix.Munmap(mem)
}
