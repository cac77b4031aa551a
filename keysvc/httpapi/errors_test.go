package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/raft"
)

// Every error a handler can meet maps to one status and stable code, as
// wrapped by the layers that return it.
func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("keysvc: op %q: %w", "x", err) }
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{badRequest("x"), 400, client.CodeBadRequest},
		{malformedRequest("x"), 400, client.CodeMalformedRequest},
		{forbidden("x"), 403, client.CodeForbidden},
		{notFound("x"), 404, client.CodeNotFound},
		{tooLarge("x"), 413, client.CodeTooLarge},
		{wrap(&keysvc.NotLeaderError{LeaderID: "n2", LeaderAPI: "https://n2:1"}), 307, client.CodeNotLeader},
		{wrap(&keysvc.NotLeaderError{LeaderID: "n2"}), 503, client.CodeNoLeader},
		{&keysvc.NotLeaderError{}, 503, client.CodeNoLeader},
		{wrap(raft.ErrNotLeader), 503, client.CodeNoLeader},
		{fmt.Errorf("%w: append: %w", keysvc.ErrNoQuorum, raft.ErrLeadershipLost), 503, client.CodeNoQuorum},
		{wrap(keysvc.ErrRegionNotAllowed), 403, client.CodeRegionNotAllowed},
		{wrap(keysvc.ErrCeremonyRequired), 403, client.CodeCeremonyRequired},
		{wrap(keysvc.ErrUnknownNode), 404, client.CodeNotFound},
		{wrap(keysvc.ErrNodeConflict), 409, client.CodeConflict},
		{wrap(keysvc.ErrLastNode), 409, client.CodeConflict},
		{keysvc.ErrAlreadyBootstrapped, 409, client.CodeConflict},
		{wrap(keysvc.ErrInvalidNode), 400, client.CodeBadRequest},
		{fmt.Errorf("%w: 5000 entries", keysvc.ErrBatchTooLarge), 413, client.CodeTooLarge},
		{keysvc.ErrNotBootstrapped, 503, client.CodeNotBootstrapped},
		{fmt.Errorf("%w: catching up", keysvc.ErrNotReady), 503, client.CodeNotReady},
		{fmt.Errorf("%w: apply: %w", keysvc.ErrClosed, raft.ErrShutdown), 503, client.CodeUnavailable},
		{keysvc.ErrStateBroken, 503, client.CodeUnavailable},
		{wrap(fmt.Errorf("%w: node n1", keysvc.ErrKeysMismatch)), 503, client.CodeUnavailable},
		{fmt.Errorf("ledger: entry 9 of 3: %w", ledger.ErrIndexOutOfRange), 404, client.CodeNotFound},
		{fmt.Errorf("raft: %w", &keysvc.CommandError{Type: "ledger.append", Err: errors.New("bad")}), 422, client.CodeRejected},
		{context.Canceled, 503, client.CodeRequestCanceled},
		{context.DeadlineExceeded, 503, client.CodeNoQuorum},
		{&hsm.Error{Op: "sign", Label: "custos:node:identity", Err: hsm.ErrDevice}, 500, client.CodeInternal},
		{&ledger.ParseError{What: "entry", Msg: "bad"}, 500, client.CodeInternal},
		{errors.New("bbolt: database not open"), 500, client.CodeInternal},
	} {
		m := classify(tc.err)
		if m.status != tc.status || m.code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, m.status, m.code, tc.status, tc.code)
		}
		if m.message == "" || strings.Contains(m.message, "keysvc:") || strings.Contains(m.message, "hsm") || strings.Contains(m.message, "bbolt") {
			t.Errorf("%v: message %q", tc.err, m.message)
		}
		if (m.status == http.StatusTemporaryRedirect) != (m.leader != nil) {
			t.Errorf("%v: redirect %d with leader %v", tc.err, m.status, m.leader)
		}
	}
}
