package pkcs11

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm"
)

const secretPIN = "s3cret-PIN-4711"

func TestConfigLogValueHidesPIN(t *testing.T) {
	t.Setenv("CUSTOS_TEST_PIN", secretPIN)
	slot := uint(7)
	for _, c := range []Config{
		{Module: "/m.so", TokenLabel: "node-1", PINEnv: "CUSTOS_TEST_PIN"},
		{Module: "/m.so", Slot: &slot, PINFile: "/run/pin"},
	} {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("open", "hsm", c)
		out := buf.String() + fmt.Sprint(c) + fmt.Sprintf("%+v", c)
		if strings.Contains(out, secretPIN) {
			t.Fatalf("PIN in log output: %s", out)
		}
		if c.PINEnv != "" && !strings.Contains(buf.String(), `"pin_env":"CUSTOS_TEST_PIN"`) {
			t.Errorf("log output lacks the PIN source: %s", buf.String())
		}
		if c.Slot != nil && !strings.Contains(buf.String(), `"slot":7`) {
			t.Errorf("log output lacks the slot: %s", buf.String())
		}
	}
}

func TestConfigValid(t *testing.T) {
	slot := uint(1)
	for _, c := range []Config{
		{TokenLabel: "t", PINEnv: "X"},
		{Module: "/m.so", PINEnv: "X"},
		{Module: "/m.so", TokenLabel: "t", Slot: &slot, PINEnv: "X"},
		{Module: "/m.so", TokenLabel: "t", PINEnv: "X", PINFile: "/f"},
		{Module: "/m.so", TokenLabel: strings.Repeat("t", 33), PINEnv: "X"},
	} {
		if err := c.valid(); err == nil {
			t.Errorf("%v: valid", c)
		}
	}
	if err := (Config{Module: "/m.so", TokenLabel: "t", PINFile: "/f"}).valid(); err != nil {
		t.Error(err)
	}
}

func TestConfigPIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		file, want string
	}{
		{write("nl", secretPIN+"\n"), secretPIN},
		{write("crlf", secretPIN+"\r\n"), secretPIN},
		{write("bare", secretPIN), secretPIN},
		{write("inner", " a b \n"), " a b "},
	} {
		got, err := Config{PINFile: c.file}.pin()
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.file, got, err, c.want)
		}
	}
	t.Setenv("CUSTOS_TEST_PIN", secretPIN)
	if got, err := (Config{PINEnv: "CUSTOS_TEST_PIN"}).pin(); err != nil || got != secretPIN {
		t.Errorf("env: %q, %v", got, err)
	}
	t.Setenv("CUSTOS_TEST_EMPTY", "")
	for _, c := range []Config{
		{PINFile: filepath.Join(dir, "missing")},
		{PINFile: write("empty", "\n")},
		{PINEnv: "CUSTOS_TEST_EMPTY"},
		{PINEnv: "CUSTOS_TEST_UNSET_VARIABLE"},
		{},
	} {
		if _, err := c.pin(); !errors.Is(err, hsm.ErrNoPIN) {
			t.Errorf("%v: got %v, want hsm.ErrNoPIN", c, err)
		}
	}
}
