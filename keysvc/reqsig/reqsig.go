// Package reqsig is the signed key-op request: the canonical message a client
// signs with its certificate key for every key operation, how it travels (one
// HTTP header), and the checks a node makes before it acts on it.
//
// The serving node checks a request before it serves it; a peer checks it
// again, on its own, before it releases a share for the activation the
// request caused (docs/design.md, "Share release"). Neither trusts the other's
// word: the signature is the client's.
//
// The message is text, one field per line, in this exact order, each line
// ending in "\n" (no CR, nothing after the last line):
//
//	custos-request-v1
//	cluster <cluster name>
//	op <wrap|unwrap|rewrap|datakey|wrap-batch|unwrap-batch>
//	kek <kek id>
//	version <decimal, 0 when the request names none>
//	body-sha256 <64 lower-case hex digits>
//	context-sha256 <64 lower-case hex digits>
//	request-id <8-128 bytes of A-Z a-z 0-9 . _ ->
//	time <unix seconds, decimal>
//
// docs/agent-api.md specifies each hash byte by byte, with vectors in
// testdata/.
package reqsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// Header carries a signed request: base64url(message) "." base64url(signature),
// both without padding.
const Header = "Custos-Request-Signature"

// magic is the first line of every message.
const magic = "custos-request-v1"

// Operations a message names.
const (
	OpWrap        = "wrap"
	OpUnwrap      = "unwrap"
	OpRewrap      = "rewrap"
	OpDataKey     = "datakey"
	OpWrapBatch   = "wrap-batch"
	OpUnwrapBatch = "unwrap-batch"
)

var ops = []string{OpWrap, OpUnwrap, OpRewrap, OpDataKey, OpWrapBatch, OpUnwrapBatch}

// Bounds on what travels.
const (
	MaxMessage   = 1024
	MaxSignature = 256
	MaxCert      = 8192
	// MaxSkew is how far a request's time may be from the checker's clock.
	MaxSkew = 5 * time.Minute
)

// Error codes: stable, for clients and the key-op log.
const (
	CodeMissing   = "request_signature_missing"   // no signature where one is required
	CodeMalformed = "request_signature_malformed" // header, message or certificate does not parse
	CodeInvalid   = "request_signature_invalid"   // the signature does not verify with the certificate's key
	CodeStale     = "request_signature_stale"     // time outside MaxSkew
	CodeMismatch  = "request_signature_mismatch"  // the message does not describe this request
	CodeUntrusted = "request_certificate_untrusted"
	CodeReplayed  = "request_replayed" // the request id was used before
)

// Error is every error of this package: a stable code and a reason a person can act on.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string { return "reqsig: " + e.Code + ": " + e.Reason }

func fail(code, format string, a ...any) error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, a...)}
}

// Request is the content of a message.
type Request struct {
	Cluster   string
	Op        string
	KEKID     string
	Version   uint32   // 0 when the request names no version (wrap, datakey, batches)
	Body      [32]byte // BodyHash or BatchHash
	Context   [32]byte // ContextHash; of the empty context for batches
	RequestID string
	Time      int64 // unix seconds
}

// Marshal returns the canonical message. It validates every field.
func (r Request) Marshal() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(320)
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(magic + "\n")
	line("cluster", r.Cluster)
	line("op", r.Op)
	line("kek", r.KEKID)
	line("version", strconv.FormatUint(uint64(r.Version), 10))
	line("body-sha256", hex.EncodeToString(r.Body[:]))
	line("context-sha256", hex.EncodeToString(r.Context[:]))
	line("request-id", r.RequestID)
	line("time", strconv.FormatInt(r.Time, 10))
	return b.Bytes(), nil
}

func (r Request) validate() error {
	bad := func(format string, a ...any) error { return fail(CodeMalformed, format, a...) }
	if err := identity.CheckName(r.Cluster); err != nil {
		return bad("cluster: %v", err)
	}
	if !validOp(r.Op) {
		return bad("op %q is not one of %s", r.Op, strings.Join(ops, ", "))
	}
	if err := wrapkey.ValidateKEKID(r.KEKID); err != nil {
		return bad("kek %q: %v", r.KEKID, err)
	}
	if err := ValidateRequestID(r.RequestID); err != nil {
		return err
	}
	if r.Time <= 0 {
		return bad("time %d is not a positive unix time", r.Time)
	}
	return nil
}

func validOp(op string) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

// ValidateRequestID checks a request id: 8-128 bytes of A-Z a-z 0-9 . _ -.
func ValidateRequestID(id string) error {
	if len(id) < 8 || len(id) > 128 {
		return fail(CodeMalformed, "request id of %d bytes, want 8-128", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fail(CodeMalformed, "request id: byte %d not in A-Z a-z 0-9 . _ -", i)
		}
	}
	return nil
}

// NewRequestID returns a random request id (32 hex digits).
func NewRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// Parse parses a canonical message. It accepts exactly what Marshal writes.
func Parse(msg []byte) (Request, error) {
	var r Request
	if len(msg) > MaxMessage {
		return r, fail(CodeMalformed, "message of %d bytes, more than %d", len(msg), MaxMessage)
	}
	lines := strings.Split(string(msg), "\n")
	if len(lines) != 10 || lines[9] != "" || lines[0] != magic {
		return r, fail(CodeMalformed, "message is not nine lines starting %q, each ending in a newline", magic)
	}
	keys := []string{"cluster", "op", "kek", "version", "body-sha256", "context-sha256", "request-id", "time"}
	vals := make([]string, len(keys))
	for i, k := range keys {
		v, ok := strings.CutPrefix(lines[i+1], k+" ")
		if !ok {
			return r, fail(CodeMalformed, "line %d: want %q", i+2, k+" …")
		}
		vals[i] = v
	}
	r.Cluster, r.Op, r.KEKID, r.RequestID = vals[0], vals[1], vals[2], vals[6]
	ver, err := strconv.ParseUint(vals[3], 10, 32)
	if err != nil {
		return r, fail(CodeMalformed, "version %q", vals[3])
	}
	r.Version = uint32(ver)
	if r.Body, err = parseHash(vals[4]); err != nil {
		return r, err
	}
	if r.Context, err = parseHash(vals[5]); err != nil {
		return r, err
	}
	if r.Time, err = strconv.ParseInt(vals[7], 10, 64); err != nil {
		return r, fail(CodeMalformed, "time %q", vals[7])
	}
	// Canonical form only: one message per request, byte for byte.
	again, err := r.Marshal()
	if err != nil {
		return Request{}, err
	}
	if !bytes.Equal(again, msg) {
		return Request{}, fail(CodeMalformed, "message is not in canonical form")
	}
	return r, nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 || strings.ToLower(s) != s {
		return h, fail(CodeMalformed, "hash %q is not 64 lower-case hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fail(CodeMalformed, "hash %q is not 64 lower-case hex digits", s)
	}
	return h, nil
}

// BodyHash is the body hash of a single-item request: SHA-256 of the wrapped
// blob (unwrap, rewrap), of the plaintext data key (wrap), or of nothing
// (datakey).
func BodyHash(b []byte) [32]byte { return sha256.Sum256(b) }

// BlobVersion is the version a message names for an unwrap or rewrap of
// blob: the KEK version in the blob's header, or 0 when the blob does not
// parse (the node then refuses it as malformed, after the signature checks).
func BlobVersion(blob []byte) uint32 {
	b, err := wrapkey.Parse(blob)
	if err != nil {
		return 0
	}
	return b.KEKVersion
}

// ContextHash is SHA-256 of the context's canonical encoding (uint16 count,
// then per entry in bytewise key order uint16 key length, key, uint16 value
// length, value; big-endian).
func ContextHash(c wrapkey.Context) ([32]byte, error) {
	b, err := c.Canonical()
	if err != nil {
		return [32]byte{}, fail(CodeMalformed, "%v", err)
	}
	return sha256.Sum256(b), nil
}

// Item is one item of a batch: its body hash and context hash.
type Item struct {
	Body, Context [32]byte
}

// BatchHash is the body hash of a batch: SHA-256 of the items' body hash and
// context hash, 64 bytes per item, in request order.
func BatchHash(items []Item) [32]byte {
	h := sha256.New()
	for _, it := range items {
		h.Write(it.Body[:])
		h.Write(it.Context[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Sign signs msg with key: ECDSA (ASN.1 DER) over SHA-256(msg), or Ed25519
// over msg.
func Sign(key crypto.Signer, msg []byte) ([]byte, error) {
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		return key.Sign(rand.Reader, d[:], crypto.SHA256)
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	return nil, fmt.Errorf("reqsig: a %T key cannot sign requests (ECDSA or Ed25519)", key.Public())
}

// VerifySignature checks sig over msg with pub, as Sign makes it.
func VerifySignature(pub crypto.PublicKey, msg, sig []byte) error {
	if len(sig) == 0 || len(sig) > MaxSignature {
		return fail(CodeMalformed, "signature of %d bytes", len(sig))
	}
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		ok = ecdsa.VerifyASN1(k, d[:], sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, msg, sig)
	default:
		return fail(CodeUntrusted, "a %T certificate key cannot sign requests", pub)
	}
	if !ok {
		return fail(CodeInvalid, "the signature does not verify with the certificate's key")
	}
	return nil
}

// EncodeHeader returns the Header value for msg and sig.
func EncodeHeader(msg, sig []byte) string {
	return base64.RawURLEncoding.EncodeToString(msg) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// DecodeHeader splits and decodes a Header value.
func DecodeHeader(v string) (msg, sig []byte, err error) {
	if v == "" {
		return nil, nil, fail(CodeMissing, "no %s header: sign the request with the client certificate's key", Header)
	}
	if len(v) > 2*(MaxMessage+MaxSignature) {
		return nil, nil, fail(CodeMalformed, "%s header of %d bytes", Header, len(v))
	}
	m, s, ok := strings.Cut(v, ".")
	if !ok || !base64URL(m) || !base64URL(s) {
		return nil, nil, fail(CodeMalformed, "%s header is not message.signature", Header)
	}
	// Strict: one encoding per value (no stray bits in the last character).
	if msg, err = base64.RawURLEncoding.Strict().DecodeString(m); err != nil {
		return nil, nil, fail(CodeMalformed, "%s header message: not unpadded base64url", Header)
	}
	if sig, err = base64.RawURLEncoding.Strict().DecodeString(s); err != nil {
		return nil, nil, fail(CodeMalformed, "%s header signature: not unpadded base64url", Header)
	}
	return msg, sig, nil
}

// base64URL reports whether s holds only base64url characters (the
// decoder would skip newlines).
func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Signed is a signed request as a node forwards it to its peers and logs it:
// the message, the signature and the client's certificate (DER).
type Signed struct {
	Message   []byte `json:"message"`
	Signature []byte `json:"signature"`
	Cert      []byte `json:"cert"`
}

// Detail keys under which a kek.activate log entry carries its signed
// request, each value in standard base64.
const (
	DetailRequest   = "request"
	DetailSignature = "signature"
	DetailCert      = "client_cert"
)

// AddDetails sets s's details (DetailRequest, DetailSignature, DetailCert) in d.
func (s Signed) AddDetails(d map[string]string) {
	d[DetailRequest] = base64.StdEncoding.EncodeToString(s.Message)
	d[DetailSignature] = base64.StdEncoding.EncodeToString(s.Signature)
	d[DetailCert] = base64.StdEncoding.EncodeToString(s.Cert)
}

// FromDetails reads the signed request a log entry's details carry. The
// error (CodeMalformed) names the first detail missing or not base64.
func FromDetails(d map[string]string) (Signed, error) {
	var s Signed
	for _, f := range []struct {
		key string
		dst *[]byte
	}{{DetailRequest, &s.Message}, {DetailSignature, &s.Signature}, {DetailCert, &s.Cert}} {
		b, err := base64.StdEncoding.Strict().DecodeString(d[f.key])
		if err != nil || len(b) == 0 {
			return Signed{}, fail(CodeMalformed, "detail %q is missing or not base64", f.key)
		}
		*f.dst = b
	}
	return s, nil
}

// Options are what Verify checks against.
type Options struct {
	Cluster string         // the message and the certificate must name it
	Roots   *x509.CertPool // the cluster CA
	Now     time.Time      // the checker's clock
	// Revoked, if set, reports whether a certificate (its identity, or
	// itself by identity.Fingerprint) is revoked.
	Revoked func(id identity.Identity, fingerprint string) bool
	// Leaf, if set, is the certificate s.Cert holds, already parsed and
	// verified against Roots for client authentication by the caller's TLS
	// handshake: Verify then skips parsing it and checking its chain (the
	// API's case; a peer, which gets the certificate from the log, sets none).
	Leaf *x509.Certificate
}

// Verified is a request whose signature checked out.
type Verified struct {
	Request     Request
	Identity    identity.Identity
	Certificate *x509.Certificate
	Fingerprint string // identity.Fingerprint of the certificate
}

// Verify checks s completely: the message parses and names o.Cluster; the
// certificate chains to o.Roots for client authentication, is not revoked and
// carries an identity of the cluster (not a node); the signature verifies with
// its key; the time is within MaxSkew of o.Now. Errors are *Error.
func (s Signed) Verify(o Options) (Verified, error) {
	var v Verified
	if len(s.Cert) == 0 || len(s.Cert) > MaxCert {
		return v, fail(CodeMalformed, "client certificate of %d bytes", len(s.Cert))
	}
	r, err := Parse(s.Message)
	if err != nil {
		return v, err
	}
	if r.Cluster != o.Cluster {
		return v, fail(CodeMismatch, "the request names cluster %q, not %q", r.Cluster, o.Cluster)
	}
	cert := o.Leaf
	if cert == nil || !bytes.Equal(cert.Raw, s.Cert) {
		if cert, err = x509.ParseCertificate(s.Cert); err != nil {
			return v, fail(CodeMalformed, "client certificate: %v", err)
		}
		if o.Roots == nil {
			return v, fail(CodeUntrusted, "no cluster CA to check the client certificate against")
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: o.Roots, CurrentTime: o.Now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return v, fail(CodeUntrusted, "client certificate: %v", err)
		}
	}
	id, err := identity.FromCertificate(cert)
	if err != nil {
		return v, fail(CodeUntrusted, "client certificate: %v", err)
	}
	if id.Cluster != o.Cluster || id.Role == identity.RoleNode {
		return v, fail(CodeUntrusted, "certificate of %s cannot sign a client request in cluster %q", id, o.Cluster)
	}
	fp := identity.Fingerprint(cert)
	if o.Revoked != nil && o.Revoked(id, fp) {
		return v, fail(CodeUntrusted, "certificate %s of %s is revoked", fp, id)
	}
	if err := VerifySignature(cert.PublicKey, s.Message, s.Signature); err != nil {
		return v, err
	}
	if d := o.Now.Sub(time.Unix(r.Time, 0)); d > MaxSkew || d < -MaxSkew {
		return v, fail(CodeStale, "request time %s is %s from this node's clock (at most %s): check the client's clock", time.Unix(r.Time, 0).UTC().Format(time.RFC3339), d.Round(time.Second), MaxSkew)
	}
	return Verified{Request: r, Identity: id, Certificate: cert, Fingerprint: fp}, nil
}

// Matches reports, as a CodeMismatch *Error, how r differs from want, the
// request as the node received it (every field but RequestID and Time).
func (r Request) Matches(want Request) error {
	switch {
	case r.Cluster != want.Cluster:
		return fail(CodeMismatch, "signed for cluster %q, not %q", r.Cluster, want.Cluster)
	case r.Op != want.Op:
		return fail(CodeMismatch, "signed for %s, not %s", r.Op, want.Op)
	case r.KEKID != want.KEKID:
		return fail(CodeMismatch, "signed for kek %q, not %q", r.KEKID, want.KEKID)
	case r.Version != want.Version:
		return fail(CodeMismatch, "signed for version %d, not %d", r.Version, want.Version)
	case r.Body != want.Body:
		return fail(CodeMismatch, "signed for another body (body-sha256 differs)")
	case r.Context != want.Context:
		return fail(CodeMismatch, "signed for another context (context-sha256 differs)")
	}
	return nil
}

// CodeOf returns err's code if it is an *Error, else "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
