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
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
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
		{badRequest("x"), 400, errcode.BadRequest},
		{malformedRequest("x"), 400, errcode.MalformedRequest},
		{forbidden("x"), 403, errcode.Forbidden},
		{notFound("x"), 404, errcode.NotFound},
		{tooLarge("x"), 413, errcode.TooLarge},
		{wrap(&keysvc.NotLeaderError{LeaderID: "n2", LeaderAPI: "https://n2:1"}), 307, errcode.NotLeader},
		{wrap(&keysvc.NotLeaderError{LeaderID: "n2"}), 503, errcode.NoLeader},
		{&keysvc.NotLeaderError{}, 503, errcode.NoLeader},
		{wrap(raft.ErrNotLeader), 503, errcode.NoLeader},
		{fmt.Errorf("%w: append: %w", keysvc.ErrNoQuorum, raft.ErrLeadershipLost), 503, errcode.NoQuorum},
		{wrap(keysvc.ErrRegionNotAllowed), 403, errcode.RegionNotAllowed},
		{wrap(keysvc.ErrCeremonyRequired), 403, errcode.CeremonyRequired},
		{wrap(keysvc.ErrUnknownNode), 404, errcode.NotFound},
		{wrap(keysvc.ErrNodeConflict), 409, errcode.Conflict},
		{wrap(keysvc.ErrLastNode), 409, errcode.Conflict},
		{keysvc.ErrAlreadyBootstrapped, 409, errcode.Conflict},
		{wrap(keysvc.ErrInvalidNode), 400, errcode.BadRequest},
		{fmt.Errorf("%w: 5000 entries", keysvc.ErrBatchTooLarge), 413, errcode.TooLarge},
		{keysvc.ErrNotBootstrapped, 503, errcode.NotBootstrapped},
		{fmt.Errorf("%w: catching up", keysvc.ErrNotReady), 503, errcode.NotReady},
		{fmt.Errorf("%w: apply: %w", keysvc.ErrClosed, raft.ErrShutdown), 503, errcode.Unavailable},
		{keysvc.ErrStateBroken, 503, errcode.Unavailable},
		{wrap(fmt.Errorf("%w: node n1", keysvc.ErrKeysMismatch)), 503, errcode.Unavailable},
		{fmt.Errorf("ledger: entry 9 of 3: %w", ledger.ErrIndexOutOfRange), 404, errcode.NotFound},
		{fmt.Errorf("raft: %w", &state.CommandError{Type: "ledger.append", Err: errors.New("bad")}), 422, errcode.Rejected},
		{context.Canceled, 503, errcode.RequestCanceled},
		{context.DeadlineExceeded, 503, errcode.NoQuorum},
		{&hsm.Error{Op: "sign", Label: "custos:node:identity", Err: hsm.ErrDevice}, 500, errcode.Internal},
		{&ledger.ParseError{What: "entry", Msg: "bad"}, 500, errcode.Internal},
		{errors.New("bbolt: database not open"), 500, errcode.Internal},
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
