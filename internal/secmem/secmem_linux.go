package secmem

import "golang.org/x/sys/unix"

func dontDump(mem []byte) { _ = unix.Madvise(mem, unix.MADV_DONTDUMP) }
