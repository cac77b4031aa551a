// The one mapping from errors to HTTP statuses and stable codes, and the
// writer of error bodies.

package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
	"github.com/custos-eu/custos/raft"
)

// apiError is a refusal decided by a handler, with a message safe for the
// client.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badRequest(msg string) error {
	return &apiError{http.StatusBadRequest, errcode.BadRequest, msg}
}

// malformedRequest is a body that is not well-formed JSON; badRequest is
// for well-formed input with invalid values.
func malformedRequest(msg string) error {
	return &apiError{http.StatusBadRequest, errcode.MalformedRequest, msg}
}

func forbidden(msg string) error {
	return &apiError{http.StatusForbidden, errcode.Forbidden, msg}
}

func notFound(msg string) error {
	return &apiError{http.StatusNotFound, errcode.NotFound, msg}
}

func tooLarge(msg string) error {
	return &apiError{http.StatusRequestEntityTooLarge, errcode.TooLarge, msg}
}

// mapping is how one error is answered.
type mapping struct {
	status  int
	code    string
	message string // for the client: never a raw internal detail
	leader  *keysvc.NotLeaderError
	level   slog.Level // how loudly the cause is logged
}

// classify maps err to its answer. It is the only place that decides
// statuses and codes; handlers return errors. Messages carry only what a
// client may see: the text of handler refusals and of keysvc sentinels
// meant for callers (a node id, a region), never an HSM, bbolt or raft
// detail, which goes to the log with the request id.
func classify(err error) mapping {
	var ae *apiError
	if errors.As(err, &ae) {
		return mapping{status: ae.status, code: ae.code, message: ae.message, level: slog.LevelDebug}
	}
	if m, ok := classifyCeremony(err); ok {
		return m
	}
	if m, ok := classifyKeyOp(err); ok {
		return m
	}
	if m, ok := classifyReqsig(err); ok {
		return m
	}
	if m, ok := classifyKEK(err); ok {
		return m
	}
	var nl *keysvc.NotLeaderError
	if errors.As(err, &nl) {
		if nl.LeaderAPI == "" {
			msg := "no leader is known; an election may be under way, retry shortly"
			if nl.LeaderID != "" {
				msg = "this node is not the leader; the leader is " + nl.LeaderID + " but its API address is not known yet, retry shortly"
			}
			return mapping{status: http.StatusServiceUnavailable, code: errcode.NoLeader, message: msg, level: slog.LevelInfo}
		}
		return mapping{status: http.StatusTemporaryRedirect, code: errcode.NotLeader,
			message: "this node is not the leader; the leader is " + nl.LeaderID + " at " + nl.LeaderAPI,
			leader:  nl, level: slog.LevelDebug}
	}
	var ce *state.CommandError
	switch {
	case errors.Is(err, keysvc.ErrNotLeader), errors.Is(err, raft.ErrNotLeader):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.NoLeader, message: "no leader is known; retry shortly", level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrNotCaughtUp):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.NotCaughtUp,
			message: "this node is behind the leader and could not catch up in time, so it cannot say this does not exist; retry", level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrNoQuorum):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.NoQuorum,
			message: "not confirmed committed by a quorum in time; the outcome is unknown, treat it as failed", level: slog.LevelWarn}
	case errors.Is(err, keysvc.ErrRegionNotAllowed):
		return mapping{status: http.StatusForbidden, code: errcode.RegionNotAllowed, message: sentinelText(err), level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrCeremonyRequired):
		return mapping{status: http.StatusForbidden, code: errcode.CeremonyRequired, message: sentinelText(err), level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrUnknownNode):
		return mapping{status: http.StatusNotFound, code: errcode.NotFound, message: sentinelText(err), level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrNodeConflict), errors.Is(err, keysvc.ErrLastNode), errors.Is(err, keysvc.ErrAlreadyBootstrapped):
		return mapping{status: http.StatusConflict, code: errcode.Conflict, message: sentinelText(err), level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrInvalidNode):
		return mapping{status: http.StatusBadRequest, code: errcode.BadRequest, message: sentinelText(err), level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrBatchTooLarge):
		return mapping{status: http.StatusRequestEntityTooLarge, code: errcode.TooLarge, message: "append batch over its limit", level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrNotBootstrapped):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.NotBootstrapped, message: "the cluster is not bootstrapped (no genesis yet)", level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrNotReady):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.NotReady, message: "node not ready", level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrClosed):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.Unavailable, message: "node is shutting down; try another node", level: slog.LevelInfo}
	case errors.Is(err, keysvc.ErrStateBroken), errors.Is(err, keysvc.ErrKeysMismatch):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.Unavailable, message: "node cannot serve; try another node", level: slog.LevelError}
	case errors.Is(err, ledger.ErrIndexOutOfRange):
		return mapping{status: http.StatusNotFound, code: errcode.NotFound, message: "index or tree size beyond this node's log", level: slog.LevelDebug}
	case errors.As(err, &ce):
		return mapping{status: http.StatusUnprocessableEntity, code: errcode.Rejected, message: "the cluster rejected the command", level: slog.LevelWarn}
	case errors.Is(err, context.Canceled):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.RequestCanceled, message: "request canceled", level: slog.LevelDebug}
	case errors.Is(err, context.DeadlineExceeded):
		return mapping{status: http.StatusServiceUnavailable, code: errcode.NoQuorum, message: "not done in time; the outcome is unknown, treat it as failed", level: slog.LevelWarn}
	}
	// Anything else, a ledger.ParseError from below the handlers included
	// (handlers parse client input themselves), is the node's fault.
	return mapping{status: http.StatusInternalServerError, code: errcode.Internal, message: "internal error", level: slog.LevelError}
}

// sentinelText is the message of a keysvc refusal for a client: the error's
// text without the package prefixes ("keysvc: "), which carries node ids and
// regions only. It is used only for the membership sentinels above, whose
// wrapping adds no internal detail.
func sentinelText(err error) string {
	return strings.ReplaceAll(err.Error(), "keysvc: ", "")
}

// writeError answers err and logs its cause under the request id.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	m := classify(err)
	rid := requestID(r.Context())
	var (
		ke *keysvc.KeyOpError
		cr *state.CeremonyRefusal
	)
	switch {
	case errors.As(err, &ke) && ke.Entry != 0:
		w.Header().Set(client.HeaderLogIndex, strconv.FormatUint(ke.Entry, 10))
	case errors.As(err, &cr) && cr.Entry != 0:
		w.Header().Set(client.HeaderLogIndex, strconv.FormatUint(cr.Entry, 10))
	}
	if m.leader != nil {
		w.Header().Set(client.HeaderLeader, m.leader.LeaderAPI)
		w.Header().Set(client.HeaderLeaderID, m.leader.LeaderID)
		w.Header().Set("Location", m.leader.LeaderAPI+r.URL.RequestURI())
	}
	a.log.Log(r.Context(), m.level, "request failed",
		slog.String("request_id", rid), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", m.status), slog.String("code", m.code), slog.Any("cause", err))
	writeJSON(w, m.status, client.ErrorBody{Error: client.ErrorDetail{Code: m.code, Message: m.message, RequestID: rid}})
}
