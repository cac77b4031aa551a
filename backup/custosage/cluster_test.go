package custosage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// Through a real node: online and offline (with the API's public key)
// wraps decrypt through the API's unwrap, with receipts; a wrong expected
// context and a stanza moved to another context fail.
func TestThroughCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-memory cluster")
	}
	agent := agentcluster.New(t, "backups").Client(t, identity.RoleAgent, "agent-1")
	ctx := context.Background()
	on, err := custosage.NewOnlineRecipient(ctx, agent, "backups", ctxHR)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("through the cluster")
	file := encrypt(t, on, msg)
	wr, _ := on.Receipt()
	if wr.KEKVersion != 1 || wr.LogIndex == 0 {
		t.Fatalf("wrap receipt %+v", wr)
	}
	id := custosage.NewIdentity(ctx, agent)
	got, err := decrypt(file, id)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("decrypt: %q, %v", got, err)
	}
	if ur, _ := id.Receipt(); ur.LogIndex <= wr.LogIndex {
		t.Errorf("unwrap receipt %+v after wrap %+v", ur, wr)
	}

	pk, err := agent.PublicKey(ctx, "backups", 1)
	if err != nil {
		t.Fatal(err)
	}
	off, err := custosage.NewOfflineRecipient("backups", 1, pk.PublicKey, ctxHR)
	if err != nil {
		t.Fatal(err)
	}
	file2 := encrypt(t, off, msg)
	if got, err := decrypt(file2, id); err != nil || string(got) != string(msg) {
		t.Fatalf("decrypt offline-wrapped: %q, %v", got, err)
	}

	// The stanza claims another archive id: the API refuses (unwrap_failed).
	goodCtx, _ := custosage.EncodeContext(ctxHR)
	otherCtx, _ := custosage.EncodeContext(wrapkey.Context{"dataset": "hr", "archive": "a2"})
	_, err = decrypt(tamper(t, file, goodCtx, otherCtx), id)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != client.CodeUnwrapFailed {
		t.Errorf("moved context: %v, want unwrap_failed", err)
	}
	id.Expect = map[string]string{"archive": "a9"}
	if _, err := decrypt(file, id); !errors.Is(err, custosage.ErrContextMismatch) {
		t.Errorf("expected context: %v", err)
	}
	// A context without the policy's required field cannot be wrapped.
	bad, _ := custosage.NewOnlineRecipient(ctx, agent, "backups", wrapkey.Context{"archive": "a1"})
	var buf strings.Builder
	if _, err := encryptErr(&buf, bad); !errors.As(err, &ae) || ae.Code != client.CodeContextMissing {
		t.Errorf("wrap without dataset: %v", err)
	}
}
