package secmem

import "testing"

func TestBufferWipedAndReleased(t *testing.T) {
	b := New(32)
	if len(b.Bytes()) != 32 {
		t.Fatalf("len = %d", len(b.Bytes()))
	}
	for i := range b.Bytes() {
		b.Bytes()[i] = 0xA5
	}
	view := b.Bytes()
	if b.mem == nil {
		// On the heap the slice stays readable: it must be zero.
		b.Destroy()
		for _, c := range view {
			if c != 0 {
				t.Fatal("secret not wiped")
			}
		}
	} else {
		b.Destroy()
	}
	if b.Bytes() != nil {
		t.Fatal("Bytes after Destroy")
	}
	b.Destroy() // idempotent
	t.Logf("locked: %v", New(1).Locked())
}
