// Key operations for backup agents: wrap, unwrap, datakey, rewrap, their
// batch forms, and KEK version public keys.

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/custos-eu/custos/keysvc/errcode"

	"github.com/custos-eu/custos/keysvc/reqsig"
)

// Codes of refused key operations. Each refusal is also logged in the
// key-op log: as a denied entry of its own for a single operation, in the
// batch's entry for a batch item (whose error carries that entry's index).
// Documented in package errcode.
const (
	CodeAccessDenied      = errcode.AccessDenied
	CodeRegionDenied      = errcode.RegionDenied
	CodeContextMissing    = errcode.ContextMissing
	CodeInvalidContext    = errcode.InvalidContext
	CodeInvalidPlaintext  = errcode.InvalidPlaintext
	CodeMalformedBlob     = errcode.MalformedBlob
	CodeWrongKEK          = errcode.WrongKEK
	CodeUnwrapFailed      = errcode.UnwrapFailed
	CodeUnknownVersion    = errcode.UnknownVersion
	CodeKEKDisabled       = errcode.KEKDisabled
	CodeNoActiveVersion   = errcode.NoActiveVersion
	CodeKEKDestroyed      = errcode.KEKDestroyed
	CodeNotCaughtUp       = errcode.NotCaughtUp
	CodeSharesUnavailable = errcode.SharesUnavailable
)

// Codes of refused signed requests (the Custos-Request-Signature header,
// docs/agent-api.md). The API refuses these before the operation, so they
// have no log entry of their own; request_replayed comes from the node's
// check against the log.
const (
	CodeSignatureMissing   = reqsig.CodeMissing   // 401: unwrap, rewrap or unwrap batch without the header
	CodeSignatureMalformed = reqsig.CodeMalformed // 400: the header, message or signature does not parse
	CodeSignatureInvalid   = reqsig.CodeInvalid   // 401: the signature does not verify with the TLS certificate's key
	CodeSignatureStale     = reqsig.CodeStale     // 401: the request's time is over 5 minutes from the node's clock
	CodeSignatureMismatch  = reqsig.CodeMismatch  // 400: the message describes another request (kek, op, version, body, context, cluster)
	CodeCertUntrusted      = reqsig.CodeUntrusted // 403: the certificate may not sign requests (revoked, or a key that cannot sign)
	CodeRequestReplayed    = reqsig.CodeReplayed  // 409: the request id was used before
)

// MaxBatchItems bounds the items of one batch request.
const MaxBatchItems = 1000

// WrapRequest is the body of POST /v1/keks/{id}/wrap.
type WrapRequest struct {
	Plaintext []byte            `json:"plaintext"` // the data key, 1..4096 bytes
	Context   map[string]string `json:"context"`
}

// UnwrapRequest is the body of POST /v1/keks/{id}/unwrap.
type UnwrapRequest struct {
	Wrapped []byte            `json:"wrapped"`
	Context map[string]string `json:"context"`
}

// RewrapRequest is the body of POST /v1/keks/{id}/rewrap.
type RewrapRequest struct {
	Wrapped []byte            `json:"wrapped"`
	Context map[string]string `json:"context"`
}

// DataKeyRequest is the body of POST /v1/keks/{id}/datakey.
type DataKeyRequest struct {
	Context     map[string]string `json:"context"`
	WrappedOnly bool              `json:"wrapped_only"`
}

// WrapResponse answers a wrap or a rewrap: the wrapped blob, the KEK
// version it is wrapped to and the log index of the operation's entry.
type WrapResponse struct {
	Wrapped    []byte `json:"wrapped"`
	KEKVersion uint32 `json:"kek_version"`
	LogIndex   uint64 `json:"log_index"`
}

// UnwrapResponse answers an unwrap. Plaintext is secret: clear it after use.
type UnwrapResponse struct {
	Plaintext []byte `json:"plaintext"`
	LogIndex  uint64 `json:"log_index"`
}

// DataKeyResponse answers a datakey: a fresh 32-byte data key (absent when
// wrapped_only was asked) and its wrapped form. Plaintext is secret.
type DataKeyResponse struct {
	Plaintext  []byte `json:"plaintext,omitempty"`
	Wrapped    []byte `json:"wrapped"`
	KEKVersion uint32 `json:"kek_version"`
	LogIndex   uint64 `json:"log_index"`
}

// WrapItem is one item of a wrap batch.
type WrapItem struct {
	Plaintext []byte            `json:"plaintext"`
	Context   map[string]string `json:"context"`
}

// UnwrapItem is one item of an unwrap batch.
type UnwrapItem struct {
	Wrapped []byte            `json:"wrapped"`
	Context map[string]string `json:"context"`
}

// WrapBatchRequest is the body of POST /v1/keks/{id}/wrap/batch: 1..1000 items.
type WrapBatchRequest struct {
	Items []WrapItem `json:"items"`
}

// UnwrapBatchRequest is the body of POST /v1/keks/{id}/unwrap/batch: 1..1000 items.
type UnwrapBatchRequest struct {
	Items []UnwrapItem `json:"items"`
}

// ItemError is a failed batch item: a stable code (one of the Code
// constants), a message, and the log index of the entry recording the
// batch (and the item's refusal), when there is one.
type ItemError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	LogIndex uint64 `json:"log_index,omitempty"`
}

func (e *ItemError) Error() string {
	msg := "custos api: batch item: " + e.Code
	if e.LogIndex != 0 {
		msg += " (log entry " + strconv.FormatUint(e.LogIndex, 10) + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// WrapResult is one item's outcome in a wrap batch: the wrapped blob, or Error.
type WrapResult struct {
	Wrapped    []byte     `json:"wrapped,omitempty"`
	KEKVersion uint32     `json:"kek_version,omitempty"`
	LogIndex   uint64     `json:"log_index,omitempty"`
	Error      *ItemError `json:"error,omitempty"`
}

// Err returns the item's error (an *ItemError), or nil.
func (r WrapResult) Err() error {
	if r.Error == nil {
		return nil
	}
	return r.Error
}

// UnwrapResult is one item's outcome in an unwrap batch: the data key
// (secret: clear it after use), or Error.
type UnwrapResult struct {
	Plaintext []byte     `json:"plaintext,omitempty"`
	LogIndex  uint64     `json:"log_index,omitempty"`
	Error     *ItemError `json:"error,omitempty"`
}

// Err returns the item's error (an *ItemError), or nil.
func (r UnwrapResult) Err() error {
	if r.Error == nil {
		return nil
	}
	return r.Error
}

// WrapBatchResponse answers a wrap batch: one result per item, in order.
type WrapBatchResponse struct {
	Results []WrapResult `json:"results"`
}

// UnwrapBatchResponse answers an unwrap batch: one result per item, in order.
type UnwrapBatchResponse struct {
	Results []UnwrapResult `json:"results"`
}

// PublicKeyResponse is GET /v1/keks/{id}/versions/{v}/public: a KEK
// version's X-Wing public key (to wrap offline), its state, the log index
// of the entry that created it and that entry's canonical bytes (a
// ceremony.execute entry naming the key's SHA-256; check it with an
// inclusion proof, e.g. audit.VerifyKEKKey).
type PublicKeyResponse struct {
	KEKID      string `json:"kek_id"`
	KEKVersion uint32 `json:"kek_version"`
	PublicKey  []byte `json:"public_key"`
	State      string `json:"state"`
	LogIndex   uint64 `json:"log_index"`
	Entry      []byte `json:"entry"`
}

func kekPath(id, op string) string { return "/v1/keks/" + url.PathEscape(id) + "/" + op }

// keyOp signs sr, posts in to the key-op route op of KEK id and decodes
// the answer into out. The request body and the raw answer, which may hold
// data keys, are cleared afterwards.
func (c *Client) keyOp(ctx context.Context, id, op string, sr reqsig.Request, in, out any) error {
	sr.KEKID = id
	sig, err := c.signer.sign(sr)
	if err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	defer clear(body)
	resp, err := c.do(ctx, request{method: http.MethodPost, path: kekPath(id, op), body: body, signature: sig})
	if err != nil {
		return err
	}
	defer clear(resp.body)
	return resp.decode(op, out)
}

// single is the signed request of a single-item operation on body under
// context ctxFields.
func single(op string, version uint32, body []byte, ctxFields map[string]string) (reqsig.Request, error) {
	ch, err := contextHash(op, ctxFields)
	if err != nil {
		return reqsig.Request{}, err
	}
	return reqsig.Request{Op: op, Version: version, Body: reqsig.BodyHash(body), Context: ch}, nil
}

// batch is the signed request of a batch of items (body, context).
func batch(op string, n int, item func(i int) ([]byte, map[string]string)) (reqsig.Request, error) {
	items := make([]reqsig.Item, n)
	for i := range items {
		body, ctxFields := item(i)
		ch, err := contextHash(fmt.Sprintf("%s item %d", op, i), ctxFields)
		if err != nil {
			return reqsig.Request{}, err
		}
		items[i] = reqsig.Item{Body: reqsig.BodyHash(body), Context: ch}
	}
	empty, _ := reqsig.ContextHash(nil) // the empty context always encodes
	return reqsig.Request{Op: op, Body: reqsig.BatchHash(items), Context: empty}, nil
}

// Wrap wraps plaintext (a data key, 1..4096 bytes) with the latest active
// version of KEK kekID under context c. Any node serves it.
func (c *Client) Wrap(ctx context.Context, kekID string, plaintext []byte, ctxFields map[string]string) (WrapResponse, error) {
	var out WrapResponse
	sr, err := single(reqsig.OpWrap, 0, plaintext, ctxFields)
	if err != nil {
		return out, err
	}
	return out, c.keyOp(ctx, kekID, "wrap", sr, WrapRequest{Plaintext: plaintext, Context: ctxFields}, &out)
}

// Unwrap opens wrapped under context c with KEK kekID. The plaintext is
// secret: clear it after use.
func (c *Client) Unwrap(ctx context.Context, kekID string, wrapped []byte, ctxFields map[string]string) (UnwrapResponse, error) {
	var out UnwrapResponse
	sr, err := single(reqsig.OpUnwrap, reqsig.BlobVersion(wrapped), wrapped, ctxFields)
	if err != nil {
		return out, err
	}
	return out, c.keyOp(ctx, kekID, "unwrap", sr, UnwrapRequest{Wrapped: wrapped, Context: ctxFields}, &out)
}

// DataKey asks for a fresh 32-byte data key wrapped with KEK kekID under
// context c: the plaintext and wrapped forms, or only the wrapped one when
// wrappedOnly.
func (c *Client) DataKey(ctx context.Context, kekID string, ctxFields map[string]string, wrappedOnly bool) (DataKeyResponse, error) {
	var out DataKeyResponse
	sr, err := single(reqsig.OpDataKey, 0, nil, ctxFields)
	if err != nil {
		return out, err
	}
	return out, c.keyOp(ctx, kekID, "datakey", sr, DataKeyRequest{Context: ctxFields, WrappedOnly: wrappedOnly}, &out)
}

// Rewrap opens wrapped and wraps its data key to the latest active version
// of KEK kekID, without the data key leaving the node.
func (c *Client) Rewrap(ctx context.Context, kekID string, wrapped []byte, ctxFields map[string]string) (WrapResponse, error) {
	var out WrapResponse
	sr, err := single(reqsig.OpRewrap, reqsig.BlobVersion(wrapped), wrapped, ctxFields)
	if err != nil {
		return out, err
	}
	return out, c.keyOp(ctx, kekID, "rewrap", sr, RewrapRequest{Wrapped: wrapped, Context: ctxFields}, &out)
}

// WrapBatch wraps 1..MaxBatchItems items with KEK kekID. Each item has its
// own result, in order; one log entry records the batch and is every
// item's receipt (LogIndex). A refused item does not fail the call: check
// each result's Err. The call fails as a whole only when the batch could
// not be logged (no_quorum, for example) or was malformed, or when an
// item's context cannot be signed (it breaks the context bounds).
func (c *Client) WrapBatch(ctx context.Context, kekID string, items []WrapItem) (WrapBatchResponse, error) {
	var out WrapBatchResponse
	sr, err := batch(reqsig.OpWrapBatch, len(items), func(i int) ([]byte, map[string]string) { return items[i].Plaintext, items[i].Context })
	if err != nil {
		return out, err
	}
	return out, c.keyOp(ctx, kekID, "wrap/batch", sr, WrapBatchRequest{Items: items}, &out)
}

// UnwrapBatch unwraps 1..MaxBatchItems items with KEK kekID; like
// WrapBatch, check each result's Err. Plaintexts are secret.
func (c *Client) UnwrapBatch(ctx context.Context, kekID string, items []UnwrapItem) (UnwrapBatchResponse, error) {
	var out UnwrapBatchResponse
	sr, err := batch(reqsig.OpUnwrapBatch, len(items), func(i int) ([]byte, map[string]string) { return items[i].Wrapped, items[i].Context })
	if err != nil {
		return out, err
	}
	return out, c.keyOp(ctx, kekID, "unwrap/batch", sr, UnwrapBatchRequest{Items: items}, &out)
}

// PublicKey returns version v of KEK kekID's public key, its state and the
// log index of the entry that created it. It is not verified here: check
// the index with an inclusion proof and the key against that entry.
func (c *Client) PublicKey(ctx context.Context, kekID string, version uint32) (PublicKeyResponse, error) {
	var out PublicKeyResponse
	resp, err := c.do(ctx, request{method: http.MethodGet, path: kekPath(kekID, "versions/"+strconv.FormatUint(uint64(version), 10)+"/public")})
	if err != nil {
		return out, err
	}
	return out, resp.decode("public key", &out)
}
