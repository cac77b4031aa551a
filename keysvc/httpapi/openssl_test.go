package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
)

// A client with no custos code at all: the message written by hand, signed
// by `openssl dgst -sha256 -sign` with the agent's key file, the header
// encoded by `openssl base64 | tr`, and the unwrap sent with net/http. What
// docs/agent-api.md ("Signed requests") specifies is enough to be served.
func TestUnwrapSignedWithOpenSSL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-node cluster")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("openssl not found and CUSTOS_REQUIRE_SOFTHSM is set (apt-get install -y openssl)")
		}
		t.Skip("openssl not found (apt-get install -y openssl): the signing-by-hand test needs it")
	}
	env := agentcluster.New(t, "payroll")
	hr := map[string]string{"dataset": "hr"}
	dek := make([]byte, 32)
	rand.Read(dek)
	w, err := env.Client(t, identity.RoleAgent, "agent-1").Wrap(context.Background(), "payroll", dek, hr)
	if err != nil {
		t.Fatal(err)
	}

	files := env.PKI.Issue(t, identity.RoleAgent, "agent-ossl", "DE")
	dir := t.TempDir()
	// Context {"dataset": "hr"}: uint16 count, then uint16 len + key,
	// uint16 len + value, big-endian.
	ctxEnc := append([]byte{0, 1, 0, 7}, "dataset"...)
	ctxEnc = append(append(ctxEnc, 0, 2), "hr"...)
	msg := fmt.Sprintf("custos-request-v1\ncluster %s\nop unwrap\nkek payroll\nversion %d\nbody-sha256 %x\ncontext-sha256 %x\nrequest-id %s\ntime %d\n",
		env.PKI.Cluster, w.KEKVersion, sha256.Sum256(w.Wrapped), sha256.Sum256(ctxEnc), "openssl-"+fmt.Sprint(time.Now().UnixNano()), time.Now().Unix())
	msgFile := filepath.Join(dir, "msg")
	if err := os.WriteFile(msgFile, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `set -eu
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
openssl dgst -sha256 -sign "$KEY" -out "$DIR/sig" "$DIR/msg"
printf '%s.%s' "$(b64url < "$DIR/msg")" "$(b64url < "$DIR/sig")"
`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "KEY="+files.Key, "DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, stderr.String())
	}
	header := string(out)

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: env.PKI.ClientTLS(t, files)}, Timeout: 10 * time.Second}
	unwrap := func(blob []byte) (*http.Response, []byte) {
		t.Helper()
		body, _ := json.Marshal(client.UnwrapRequest{Wrapped: blob, Context: hr})
		req, err := http.NewRequest(http.MethodPost, env.URLs[0]+"/v1/keks/payroll/unwrap", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Custos-Request-Signature", header)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}
	resp, body := unwrap(w.Wrapped)
	if resp.StatusCode != 200 {
		t.Fatalf("unwrap signed with openssl: %d %s", resp.StatusCode, body)
	}
	var u client.UnwrapResponse
	if err := json.Unmarshal(body, &u); err != nil || !bytes.Equal(u.Plaintext, dek) {
		t.Fatalf("unwrap answer: %v", err)
	}

	// The same header on another blob is refused: it signs this one.
	other := bytes.Clone(w.Wrapped)
	other[len(other)-1] ^= 1
	resp, body = unwrap(other)
	if resp.StatusCode != 400 || !strings.Contains(string(body), client.CodeSignatureMismatch) {
		t.Fatalf("openssl header on another blob: %d %s", resp.StatusCode, body)
	}
}
