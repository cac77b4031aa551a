package pkcs11

// Config: which module and token to open, where the PIN comes from, and how to log it.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/custos-eu/custos/hsm"
)

// Config names a token and where its PIN comes from. A PIN never comes from a flag or a
// config value printed anywhere: it is read, when Open is called, from PINFile (a file
// whose trailing newline is trimmed) or from the environment variable named by PINEnv.
// Exactly one of the two must be set, and exactly one of TokenLabel and Slot.
type Config struct {
	Module     string // path to the PKCS#11 library
	TokenLabel string // token label, as in CK_TOKEN_INFO
	Slot       *uint  // slot ID, instead of TokenLabel
	PINFile    string // file holding the user PIN
	PINEnv     string // name of the environment variable holding the user PIN
}

// LogValue implements slog.LogValuer. It never prints the PIN, only where it comes from.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("module", c.Module)}
	if c.TokenLabel != "" {
		attrs = append(attrs, slog.String("token", c.TokenLabel))
	}
	if c.Slot != nil {
		attrs = append(attrs, slog.Uint64("slot", uint64(*c.Slot)))
	}
	switch {
	case c.PINFile != "":
		attrs = append(attrs, slog.String("pin_file", c.PINFile))
	case c.PINEnv != "":
		attrs = append(attrs, slog.String("pin_env", c.PINEnv))
	}
	return slog.GroupValue(attrs...)
}

// String is LogValue for %v; it never prints the PIN.
func (c Config) String() string { return c.LogValue().String() }

// token names the token for error messages.
func (c Config) token() string {
	if c.Slot != nil {
		return "slot " + strconv.FormatUint(uint64(*c.Slot), 10)
	}
	return c.TokenLabel
}

// valid checks every combination of fields in one place.
func (c Config) valid() error {
	switch {
	case c.Module == "":
		return errors.New("config: Module (path to the PKCS#11 library) is empty")
	case c.TokenLabel == "" && c.Slot == nil:
		return errors.New("config: set TokenLabel or Slot")
	case c.TokenLabel != "" && c.Slot != nil:
		return errors.New("config: set only one of TokenLabel and Slot")
	case len(c.TokenLabel) > 32:
		return errors.New("config: TokenLabel is longer than 32 bytes")
	case c.PINFile != "" && c.PINEnv != "":
		return errors.New("config: set only one of PINFile and PINEnv")
	}
	return nil
}

// pin reads the PIN. Errors wrap ErrNoPIN and never contain the PIN.
func (c Config) pin() (string, error) {
	var pin string
	switch {
	case c.PINFile != "":
		b, err := os.ReadFile(c.PINFile)
		if err != nil {
			return "", fmt.Errorf("%w: %v", hsm.ErrNoPIN, err)
		}
		pin = strings.TrimRight(string(b), "\r\n")
		clear(b)
		if pin == "" {
			return "", fmt.Errorf("%w: PIN file %s is empty", hsm.ErrNoPIN, c.PINFile)
		}
		if fi, err := os.Stat(c.PINFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			slog.Warn("hsm: PIN file is readable by group or others", "pin_file", c.PINFile, "mode", fi.Mode().Perm().String())
		}
	case c.PINEnv != "":
		pin = os.Getenv(c.PINEnv)
		if pin == "" {
			return "", fmt.Errorf("%w: environment variable %s is unset or empty", hsm.ErrNoPIN, c.PINEnv)
		}
	default:
		return "", fmt.Errorf("%w: set PINFile or PINEnv", hsm.ErrNoPIN)
	}
	return pin, nil
}
