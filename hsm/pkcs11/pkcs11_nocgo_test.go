//go:build !cgo

package pkcs11

import (
	"strings"
	"testing"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := Open(Config{Module: "/m.so", TokenLabel: "t", PINEnv: "X"})
	if err == nil || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("Open without cgo: %v", err)
	}
}
