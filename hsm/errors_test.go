package hsm

import (
	"errors"
	"testing"
)

func TestErrorMessage(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{&Error{Op: OpSeal, Label: "custos:kek:k1:1", Err: ErrKeyNotFound}, `hsm: seal with key "custos:kek:k1:1": key not found`},
		{&Error{Op: OpOpenToken, Label: "node-1", Err: ErrWrongPIN, detail: "pkcs11: 0xA0: CKR_PIN_INCORRECT"}, `hsm: open token "node-1": wrong PIN`},
		{&Error{Op: OpList, Err: ErrClosed}, `hsm: list: token is closed`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if !errors.Is(c.err, c.err.Err) {
			t.Errorf("%v does not unwrap", c.err)
		}
	}
}
