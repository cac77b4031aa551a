package custosage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// localKEK is a KEK version held locally: a Wrapper and Unwrapper for
// tests without a cluster.
type localKEK struct {
	id      string
	version uint32
	key     *wrapkey.Key
	unwraps int
}

func newLocalKEK(t *testing.T, id string) *localKEK {
	t.Helper()
	seed := make([]byte, wrapkey.SeedSize)
	rand.Read(seed)
	k, err := wrapkey.NewKey(seed, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &localKEK{id: id, version: 1, key: k}
}

func (l *localKEK) Wrap(_ context.Context, kekID string, pt []byte, c map[string]string) (client.WrapResponse, error) {
	b, err := wrapkey.Wrap(nil, l.key.PublicKey(), kekID, l.version, c, pt)
	return client.WrapResponse{Wrapped: b, KEKVersion: l.version, LogIndex: 7}, err
}

func (l *localKEK) Unwrap(_ context.Context, kekID string, blob []byte, c map[string]string) (client.UnwrapResponse, error) {
	l.unwraps++
	if kekID != l.id {
		return client.UnwrapResponse{}, errors.New("wrong kek")
	}
	pt, err := l.key.Unwrap(blob, c)
	return client.UnwrapResponse{Plaintext: pt, LogIndex: 8}, err
}

func encrypt(t *testing.T, r age.Recipient, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(file []byte, id age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(file), id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

var ctxHR = wrapkey.Context{"dataset": "hr", "archive": "a1"}

func TestRoundTripOnlineAndOffline(t *testing.T) {
	k := newLocalKEK(t, "backups")
	ctx := context.Background()
	on, err := custosage.NewOnlineRecipient(ctx, k, "backups", ctxHR)
	if err != nil {
		t.Fatal(err)
	}
	off, err := custosage.NewOfflineRecipient("backups", 1, k.key.PublicKey(), ctxHR)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("payroll 2026")
	for name, r := range map[string]age.Recipient{"online": on, "offline": off} {
		file := encrypt(t, r, msg)
		hdr, _ := age.ExtractHeader(bytes.NewReader(file))
		if !bytes.Contains(hdr, []byte("-> custos backups 1 eyJhcmNoaXZlIjoiYTEiLCJkYXRhc2V0IjoiaHIifQ\n")) {
			t.Errorf("%s: header:\n%s", name, hdr)
		}
		id := custosage.NewIdentity(ctx, k)
		got, err := decrypt(file, id)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s: decrypt: %q, %v", name, got, err)
		}
		if rc, ok := id.Receipt(); !ok || rc.LogIndex != 8 || rc.KEKVersion != 1 {
			t.Errorf("%s: unwrap receipt %+v %v", name, rc, ok)
		}
		// Expect: matching fields pass, others are refused before unwrapping.
		id.Expect = map[string]string{"dataset": "hr"}
		if _, err := decrypt(file, id); err != nil {
			t.Errorf("%s: expect matching: %v", name, err)
		}
		n := k.unwraps
		id.Expect = map[string]string{"dataset": "finance"}
		if _, err := decrypt(file, id); !errors.Is(err, custosage.ErrContextMismatch) || k.unwraps != n {
			t.Errorf("%s: expect mismatch: %v (unwraps %d → %d)", name, err, n, k.unwraps)
		}
	}
	if rc, ok := on.Receipt(); !ok || rc.LogIndex != 7 || rc.KEKVersion != 1 {
		t.Errorf("online receipt %+v", rc)
	}
	if rc, _ := off.Receipt(); rc.LogIndex != 0 || rc.KEKVersion != 1 {
		t.Errorf("offline receipt %+v", rc)
	}
	// Post-quantum label: not mixable with a classical recipient.
	x, _ := age.GenerateX25519Identity()
	if _, err := age.Encrypt(io.Discard, off, x.Recipient()); err == nil {
		t.Error("mixing custos with an X25519 recipient was accepted")
	}
}

// editStanza re-encodes the header of file with f applied to the custos stanza.
func tamper(t *testing.T, file []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(file, []byte(old)) {
		t.Fatalf("no %q in file", old)
	}
	return bytes.Replace(file, []byte(old), []byte(new), 1)
}

func TestTamperedStanzas(t *testing.T) {
	k := newLocalKEK(t, "backups")
	ctx := context.Background()
	off, _ := custosage.NewOfflineRecipient("backups", 1, k.key.PublicKey(), ctxHR)
	file := encrypt(t, off, []byte("secret"))
	id := custosage.NewIdentity(ctx, k)
	otherCtx, _ := custosage.EncodeContext(wrapkey.Context{"dataset": "hr", "archive": "a2"})
	goodCtx, _ := custosage.EncodeContext(ctxHR)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"other context", goodCtx, otherCtx, "cannot unwrap"},
		{"version", "custos backups 1 ", "custos backups 2 ", "blob is for backups version 1"},
		{"version leading zero", "custos backups 1 ", "custos backups 01 ", "canonical decimal"},
		{"kek id", "custos backups 1 ", "custos backupz 1 ", "blob is for backups"},
		{"padded context", goodCtx, goodCtx + "==", "base64"},
		{"extra arg", goodCtx, goodCtx + " x", "4 arguments"},
	} {
		_, err := decrypt(tamper(t, file, tc.old, tc.new), id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A flipped bit in the stanza body: the blob does not open.
	hdr, _ := age.ExtractHeader(bytes.NewReader(file))
	lines := strings.Split(string(hdr), "\n")
	body := lines[2] // "-> custos …" is line 1; its body follows
	flipped := []byte(body)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	if _, err := decrypt(tamper(t, file, body, string(flipped)), id); err == nil {
		t.Error("flipped stanza body decrypted")
	}
	// A file without a custos stanza: incorrect identity.
	x, _ := age.GenerateX25519Identity()
	if _, err := decrypt(encrypt(t, x.Recipient(), []byte("x")), id); err == nil || !strings.Contains(err.Error(), "no \"custos\" stanza") {
		t.Errorf("no custos stanza: %v", err)
	}
}

func TestContextEncoding(t *testing.T) {
	arg, err := custosage.EncodeContext(nil)
	if err != nil || arg != "e30" {
		t.Fatalf("empty context: %q %v", arg, err)
	}
	for _, bad := range []string{"e30=", "W10", "eyJhIjoxfQ", "eyJiIjoiMSIsImEiOiIyIn0", "eyAiYSI6IjEifQ", "bnVsbA"} {
		if _, err := custosage.DecodeContext(bad); err == nil {
			t.Errorf("DecodeContext(%q) accepted", bad)
		}
	}
	c := wrapkey.Context{"z": "<&>", "a": "é"}
	arg, _ = custosage.EncodeContext(c)
	got, err := custosage.DecodeContext(arg)
	if err != nil || len(got) != 2 || got["z"] != "<&>" {
		t.Errorf("round trip: %v %v", got, err)
	}
	if _, err := custosage.NewOfflineRecipient("backups", 1, make([]byte, 10), nil); err == nil {
		t.Error("short public key accepted")
	}
}

func encryptErr(w io.Writer, r age.Recipient) (io.WriteCloser, error) { return age.Encrypt(w, r) }
