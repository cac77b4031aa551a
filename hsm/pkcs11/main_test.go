package pkcs11_test

import (
	"testing"

	"github.com/custos-eu/custos/hsm/hsmtest"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }
