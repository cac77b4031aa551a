package officerhsm_test

import (
	"reflect"
	"testing"

	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

// TestConfig: a PKCS#11 URI opens the token it names (the Config part of what was
// TestParsePKCS11URI).
func TestConfig(t *testing.T) {
	const mod = "/usr/lib/softhsm/libsofthsm2.so"
	u, err := officer.ParsePKCS11URI("PKCS11:object=custos%20officer;type=private;slot-id=0042?pin-source=env:ALICE_PIN&module-path=%2Fopt%2Fp11.so")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := officerhsm.Config(u); cfg.Module != "/opt/p11.so" || cfg.Slot == nil || *cfg.Slot != 42 || cfg.PINEnv != "ALICE_PIN" || cfg.TokenLabel != "" || cfg.PINFile != "" {
		t.Fatalf("Config() = %v", cfg)
	}
	u, err = officer.ParsePKCS11URI("pkcs11:token=officer-alice;object=custos-officer?module-path=" + mod + "&pin-source=file:/path/pin")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := officerhsm.Config(u); !reflect.DeepEqual(cfg, pkcs11.Config{Module: mod, TokenLabel: "officer-alice", PINFile: "/path/pin"}) {
		t.Fatalf("Config() = %v", cfg)
	}
}
