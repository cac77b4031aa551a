package hsmtest_test

import (
	"errors"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/hsmtest"
)

func TestFakeConformance(t *testing.T) {
	hsmtest.RunConformance(t, func(t *testing.T) hsm.Token {
		tok := hsmtest.NewFake()
		t.Cleanup(func() { tok.Close() })
		return tok
	})
}

func TestFakeFault(t *testing.T) {
	tok := hsmtest.NewFake()
	f := tok.(*hsmtest.Fake)
	if err := tok.GenerateAESKey("k"); err != nil {
		t.Fatal(err)
	}
	f.SetFault(func(op, label string) error {
		if op == hsm.OpSeal {
			return hsm.ErrDevice
		}
		return nil
	})
	_, err := tok.Seal("k", []byte("x"), nil)
	var he *hsm.Error
	if !errors.Is(err, hsm.ErrDevice) || !errors.As(err, &he) || he.Op != hsm.OpSeal || he.Label != "k" {
		t.Fatalf("Seal with a fault: %v", err)
	}
	if _, err := tok.List(); err != nil {
		t.Fatalf("List is not faulted: %v", err)
	}
	f.SetFault(nil)
	if _, err := tok.Seal("k", []byte("x"), nil); err != nil {
		t.Fatalf("Seal after the fault is cleared: %v", err)
	}
}
