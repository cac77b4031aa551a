package keysvc_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testlog"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// TestPeerChannelRefusesBadInput: whatever bytes a member sends as a call,
// the receiving node answers with a refusal and a stable code (never
// internal, never without a code), logs no secret the body carried, and
// keeps serving.
func TestPeerChannelRefusesBadInput(t *testing.T) {
	logs := map[string]*testlog.Buffer{}
	var mu sync.Mutex
	c := keysvctest.NewCluster(t, 3, keysvctest.Options{PeerChannel: true, Configure: func(cfg *keysvc.Config) {
		mu.Lock()
		defer mu.Unlock()
		logs[cfg.NodeID] = &testlog.Buffer{}
		cfg.Logger = slog.New(slog.NewJSONHandler(logs[cfg.NodeID], &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	ctx := ctxT(t, 60*time.Second)

	// secret stands for a share or key: no refusal may log it.
	const secret = "c2VjcmV0LXNoYXJlLWJ5dGVz"
	const (
		malformed = "malformed_request"
		bad       = "bad_request"
	)
	calls := []string{"append", "seal", "discard", "attest", "release", "commit"}
	type tc struct {
		call, body, code string
	}
	var cases []tc
	for _, call := range calls {
		cases = append(cases,
			tc{call, ``, malformed},
			tc{call, " \n", malformed},
			tc{call, `{`, malformed},
			tc{call, `{"kek_id":}`, malformed},
			tc{call, `{} {}`, malformed},
			tc{call, `{}` + secret, malformed},
			tc{call, "{\"kek_id\":\"payroll\xff\",\"share\":\"" + secret + "\"}", malformed},
			tc{call, "\xef\xbb\xbf{}", malformed}, // a byte order mark is not JSON
			tc{call, `{"kek_id":"payroll\ud800","share":"` + secret + `"}`, malformed},
			tc{call, `{"kek_id":"\udfffpayroll"}`, malformed},
			tc{call, `{"share":"` + secret + `",}`, malformed},
			tc{call, `null`, bad},
			tc{call, `[]`, bad},
			tc{call, `"` + secret + `"`, bad},
			tc{call, `{"zzz":1}`, bad},
		)
	}
	cases = append(cases,
		// Values of the wrong type.
		tc{"discard", `{"kek_id":1}`, bad},
		tc{"discard", `{"version":"1"}`, bad},
		tc{"discard", `{"version":-1}`, bad},
		tc{"discard", `{"version":4294967296}`, bad},
		tc{"seal", `{"share":"` + secret + `!"}`, bad}, // not base64
		tc{"seal", `{"threshold":1.5}`, bad},
		tc{"release", `{"context":{"dataset":1}}`, bad},
		tc{"release", `{"activation":"1"}`, bad},
		tc{"attest", `{"statement":{}}`, bad},
		tc{"append", `{"entries":{}}`, bad},
		tc{"append", `{"entries":[{"type":1}]}`, bad},
		tc{"append", `{"entries":[{"time":"yesterday"}]}`, bad},
		tc{"append", `{"entries":[{"details":{"a":1}}]}`, bad},

		// An empty call, a malformed KEK id, an unknown KEK: discard.
		tc{"discard", `{}`, bad},
		tc{"discard", `{"kek_id":"BAD ID","version":1,"dealing":"x"}`, bad},
		tc{"discard", `{"kek_id":"` + strings.Repeat("k", 65) + `","version":1,"dealing":"x"}`, bad},
		tc{"discard", `{"kek_id":"payroll","version":0,"dealing":"x"}`, bad},
		tc{"discard", `{"kek_id":"payroll","version":1,"dealing":""}`, "discard_refused"},
		tc{"discard", `{"kek_id":"nosuch","version":1,"dealing":"x"}`, "discard_refused"},
		// The others.
		tc{"seal", `{}`, "seal_refused"},
		tc{"seal", `{"kek_id":"BAD ID","version":1,"share":"` + secret + `"}`, "seal_refused"},
		tc{"release", `{}`, "release_refused"},
		tc{"release", `{"kek_id":"BAD ID","version":1,"activation":1}`, "release_refused"},
		tc{"release", `{"kek_id":"nosuch","version":1,"activation":1}`, "release_refused"},
		tc{"attest", `{}`, bad},
		tc{"attest", `{"kek_id":"BAD ID","version":1,"statement":"AAAA"}`, bad},
		tc{"attest", `{"kek_id":"nosuch","version":1,"statement":"AAAA"}`, "rejected"},
		tc{"commit", `{"kek_id":"x"}`, bad},
		// Entries: none, of a reserved type, malformed.
		tc{"append", `{}`, bad},
		tc{"append", `{"entries":[]}`, bad},
		tc{"append", `{"entries":[{}]}`, bad},
		tc{"append", `{"entries":[{"type":"BAD","actor":{"identity":"x"},"outcome":"ok"}]}`, bad},
		tc{"append", `{"entries":[{"type":"x.y","actor":{"identity":"x"},"outcome":"maybe"}]}`, bad},
		tc{"append", `{"entries":[{"type":"x.y","actor":{"identity":"x"},"outcome":"ok","details":{"BAD KEY":"v"}}]}`, bad},
		tc{"append", `{"entries":[{"type":"x.y","actor":{"identity":"x"},"outcome":"ok","reason":"` + strings.Repeat("r", ledger.MaxFieldLen+1) + `"}]}`, bad},
		tc{"append", `{"entries":[{"type":"x.y","actor":{"identity":"x"},"outcome":"ok","kek_version":1}]}`, bad},
	)
	// The node whose entries the append cases forward: a follower when
	// they are sent (leadership may move under a loaded machine; the
	// cases are sent by whichever node follows then).
	self := func(n *keysvc.Node) string {
		return identity.Identity{Cluster: "test", Name: n.Info().ID, Role: identity.RoleNode, Region: n.Info().Region}.String()
	}
	for _, typ := range []string{"cluster.genesis", "node.add", "node.remove", ledger.TypeInit, ledger.TypePropose, ledger.TypeApprove,
		ledger.TypeExecute, ledger.TypeRefuse, ledger.TypeDestroyed} {
		cases = append(cases, tc{"append", `{"entries":[{"type":"` + typ + `","actor":{"identity":"SELF","role":"node"},"outcome":"ok"}]}`, bad})
	}

	for _, tc := range cases {
		// Seal, discard and release come from the leader or a peer to a
		// follower; append, attest and commit go to the leader.
		leader, fol := c.Leader(), c.Follower()
		from, to := fol, leader
		if tc.call == "seal" || tc.call == "discard" || tc.call == "release" {
			from, to = leader, fol
		}
		body := strings.ReplaceAll(tc.body, "SELF", self(from))
		status, code, msg, err := keysvc.PeerCallRaw(ctx, from, to, tc.call, []byte(body))
		if err != nil {
			t.Fatalf("%s %q: %v", tc.call, tc.body, err)
		}
		if status == 200 || code != tc.code {
			t.Errorf("%s %q: %d %q (%s), want %s", tc.call, tc.body, status, code, msg, tc.code)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("%s %q: the answer quotes the body: %s", tc.call, tc.body, msg)
		}
	}

	// (A body over peer.MaxBody is refused too_large by package peer,
	// whatever the call: TestBodyOverMaxBody.)

	refused := false
	for _, l := range logs {
		refused = refused || strings.Contains(l.String(), "peer: call refused")
	}
	if !refused {
		t.Fatal("the refusals were not logged")
	}
	for id, l := range logs {
		if strings.Contains(l.String(), secret) {
			t.Errorf("node %s logged a secret from a refused call", id)
		}
	}
	// Every node still serves: a follower's entry goes through the
	// leader over the peer channel.
	err := keysvctest.Retry(func(ctx context.Context) error {
		fol := c.Follower()
		_, err := fol.Append(ctx, ledger.Entry{Type: "test.note", Actor: ledger.Actor{Identity: self(fol), Role: "node"}, Outcome: ledger.OutcomeOK})
		return err
	})
	if err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
	for _, n := range c.Running() {
		if err := n.Ready(); err != nil {
			t.Errorf("%s: %v", n.Info().ID, err)
		}
	}
}
