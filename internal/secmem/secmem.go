// Package secmem holds small secrets (seeds, shares) outside the Go heap, in
// memory that is locked against swapping and excluded from core dumps where
// the OS allows, and wiped when destroyed.
//
// Locking is best effort: without CAP_IPC_LOCK or enough RLIMIT_MEMLOCK the
// memory is still off the heap (the collector never copies it) and still
// wiped, but it may be swapped. Locked reports which.
package secmem

import (
	"sync"
)

// Buffer is a fixed-size secret. Bytes is valid until Destroy; a Buffer is
// not safe for concurrent Destroy and use (callers guard it).
type Buffer struct {
	mu     sync.Mutex
	b      []byte // the usable bytes, inside mem
	mem    []byte // the whole mapping (nil when on the heap)
	locked bool
}

// New returns a zeroed Buffer of n bytes (n > 0).
func New(n int) *Buffer {
	if n <= 0 {
		panic("secmem: size must be positive")
	}
	buf := &Buffer{}
	if mem, locked, err := alloc(n); err == nil {
		buf.mem, buf.b, buf.locked = mem, mem[:n:n], locked
	} else {
		buf.b = make([]byte, n)
	}
	return buf
}

// Bytes returns the secret's bytes (nil after Destroy).
func (b *Buffer) Bytes() []byte { return b.b }

// Locked reports whether the memory is locked against swapping.
func (b *Buffer) Locked() bool { return b.locked }

// Destroy wipes the secret and releases its memory. Idempotent.
func (b *Buffer) Destroy() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b == nil {
		return
	}
	clear(b.b)
	if b.mem != nil {
		free(b.mem, b.locked)
	}
	b.b, b.mem = nil, nil
}
