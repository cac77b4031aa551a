//go:build cgo

package pkcs11

// SetFaultHook makes every operation attempt call f first; a non-nil result stands in
// for the attempt's error. The returned function removes the hook.
func SetFaultHook(f func(op string) error) (remove func()) {
	faultHook.Store(&f)
	return func() { faultHook.Store(nil) }
}
