// Package custosage is the age (filippo.io/age) recipient and identity for
// Custos: the age file key is wrapped by a Custos KEK (X-Wing hybrid HPKE,
// keysvc/wrapkey), so only the cluster, through an authorised and logged
// unwrap, can open the file.
//
// # Stanza
//
//	-> custos KEK-ID KEK-VERSION CONTEXT
//	<body: the wrapkey blob of the 16-byte file key>
//
// KEK-VERSION is decimal without leading zeros; CONTEXT is the unpadded
// standard base64 of the context's canonical JSON (an object of strings,
// keys sorted, as encoding/json writes a map[string]string). The blob is
// wrapped under exactly that context, so the stanza says what the file key
// is bound to (dataset, archive id, …) and the unwrap presents it back.
// The recipient declares age's "postquantum" label, so it cannot be mixed
// with classical recipients in one file.
package custosage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync"

	"filippo.io/age"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// StanzaType is the age stanza type of a Custos-wrapped file key.
const StanzaType = "custos"

// FileKeySize is the size of an age file key.
const FileKeySize = 16

// Wrapper wraps a data key online; *client.Client satisfies it.
type Wrapper interface {
	Wrap(ctx context.Context, kekID string, plaintext []byte, ctxFields map[string]string) (client.WrapResponse, error)
}

// Unwrapper unwraps a data key online; *client.Client satisfies it.
type Unwrapper interface {
	Unwrap(ctx context.Context, kekID string, wrapped []byte, ctxFields map[string]string) (client.UnwrapResponse, error)
}

// Receipt records one wrap or unwrap: the KEK version used and the key-op
// log index of its entry (0 for an offline wrap, which is not logged).
type Receipt struct {
	KEKID      string
	KEKVersion uint32
	LogIndex   uint64
}

// EncodeContext returns the stanza argument for c: base64 (std, unpadded)
// of its canonical JSON.
func EncodeContext(c wrapkey.Context) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	if c == nil {
		c = wrapkey.Context{}
	}
	b, err := json.Marshal(map[string]string(c))
	if err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// DecodeContext parses a stanza's context argument strictly: valid
// unpadded base64 of exactly the canonical JSON EncodeContext writes.
func DecodeContext(arg string) (wrapkey.Context, error) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(arg)
	if err != nil {
		return nil, fmt.Errorf("custosage: context argument is not unpadded base64: %v", err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, fmt.Errorf("custosage: context argument is not a JSON object of strings")
	}
	c := wrapkey.Context(m)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("custosage: context argument: %v", err)
	}
	canon, _ := json.Marshal(m)
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("custosage: context argument is not canonical JSON")
	}
	return c, nil
}

func newStanza(kekID string, version uint32, ctxArg string, blob []byte) *age.Stanza {
	return &age.Stanza{Type: StanzaType, Args: []string{kekID, strconv.FormatUint(uint64(version), 10), ctxArg}, Body: blob}
}

// ParsedStanza is a custos stanza's content, checked for consistency
// (the blob parses and names the arguments' KEK id and version).
type ParsedStanza struct {
	KEKID      string
	KEKVersion uint32
	Context    wrapkey.Context
	Blob       []byte
}

// ParseStanza checks a custos stanza strictly. It does not unwrap.
func ParseStanza(s *age.Stanza) (*ParsedStanza, error) {
	if s.Type != StanzaType {
		return nil, fmt.Errorf("custosage: stanza type %q, want %q", s.Type, StanzaType)
	}
	if len(s.Args) != 3 {
		return nil, fmt.Errorf("custosage: custos stanza has %d arguments, want 3 (kek id, version, context)", len(s.Args))
	}
	kekID := s.Args[0]
	if err := wrapkey.ValidateKEKID(kekID); err != nil {
		return nil, fmt.Errorf("custosage: stanza kek id: %v", err)
	}
	v, err := strconv.ParseUint(s.Args[1], 10, 32)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != s.Args[1] {
		return nil, fmt.Errorf("custosage: stanza kek version %q is not a canonical decimal >= 1", s.Args[1])
	}
	c, err := DecodeContext(s.Args[2])
	if err != nil {
		return nil, err
	}
	b, err := wrapkey.Parse(s.Body)
	if err != nil {
		return nil, fmt.Errorf("custosage: stanza body: %w", err)
	}
	if b.KEKID != kekID || b.KEKVersion != uint32(v) {
		return nil, fmt.Errorf("custosage: stanza names kek %s version %d but its blob is for %s version %d", kekID, v, b.KEKID, b.KEKVersion)
	}
	return &ParsedStanza{KEKID: kekID, KEKVersion: uint32(v), Context: c, Blob: bytes.Clone(s.Body)}, nil
}

// receipts is the last receipt of a recipient or identity.
type receipts struct {
	mu   sync.Mutex
	last Receipt
	ok   bool
}

func (r *receipts) set(rc Receipt) {
	r.mu.Lock()
	r.last, r.ok = rc, true
	r.mu.Unlock()
}

// Receipt returns the last wrap's or unwrap's receipt, if any.
func (r *receipts) Receipt() (Receipt, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.ok
}

// OnlineRecipient wraps the file key through the Custos API: logged, and
// to the KEK's latest active version.
type OnlineRecipient struct {
	receipts
	w       Wrapper
	ctx     context.Context
	kekID   string
	context wrapkey.Context
	ctxArg  string
}

// NewOnlineRecipient returns a recipient wrapping through w with KEK kekID
// under c. ctx bounds the API call made during age.Encrypt.
func NewOnlineRecipient(ctx context.Context, w Wrapper, kekID string, c wrapkey.Context) (*OnlineRecipient, error) {
	if err := wrapkey.ValidateKEKID(kekID); err != nil {
		return nil, err
	}
	arg, err := EncodeContext(c)
	if err != nil {
		return nil, err
	}
	return &OnlineRecipient{w: w, ctx: ctx, kekID: kekID, context: maps.Clone(c), ctxArg: arg}, nil
}

// Wrap implements age.Recipient.
func (r *OnlineRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	s, _, err := r.WrapWithLabels(fileKey)
	return s, err
}

// WrapWithLabels implements age.RecipientWithLabels with the "postquantum" label.
func (r *OnlineRecipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	if len(fileKey) != FileKeySize {
		return nil, nil, fmt.Errorf("custosage: file key of %d bytes, want %d", len(fileKey), FileKeySize)
	}
	resp, err := r.w.Wrap(r.ctx, r.kekID, fileKey, r.context)
	if err != nil {
		return nil, nil, fmt.Errorf("custosage: wrap with kek %s: %w", r.kekID, err)
	}
	b, err := wrapkey.Parse(resp.Wrapped)
	if err != nil {
		return nil, nil, fmt.Errorf("custosage: the API's wrapped key: %w", err)
	}
	if b.KEKID != r.kekID || b.KEKVersion != resp.KEKVersion {
		return nil, nil, fmt.Errorf("custosage: the API wrapped to kek %s version %d, answered version %d of %s", b.KEKID, b.KEKVersion, resp.KEKVersion, r.kekID)
	}
	r.set(Receipt{KEKID: r.kekID, KEKVersion: resp.KEKVersion, LogIndex: resp.LogIndex})
	return []*age.Stanza{newStanza(r.kekID, resp.KEKVersion, r.ctxArg, resp.Wrapped)}, []string{"postquantum"}, nil
}

// OfflineRecipient wraps the file key with a KEK version's public key,
// without calling the API. The caller must have checked the key against
// the key-op log (the entry that created the version).
type OfflineRecipient struct {
	receipts
	pub     []byte
	kekID   string
	version uint32
	context wrapkey.Context
	ctxArg  string
	rand    io.Reader
}

// NewOfflineRecipient returns a recipient wrapping to pub, the public key
// of version `version` of KEK kekID, under c.
func NewOfflineRecipient(kekID string, version uint32, pub []byte, c wrapkey.Context) (*OfflineRecipient, error) {
	if _, err := wrapkey.Info(kekID, version, c); err != nil {
		return nil, err
	}
	if len(pub) != wrapkey.PublicKeySize {
		return nil, fmt.Errorf("custosage: public key of %d bytes, want %d", len(pub), wrapkey.PublicKeySize)
	}
	arg, err := EncodeContext(c)
	if err != nil {
		return nil, err
	}
	return &OfflineRecipient{pub: bytes.Clone(pub), kekID: kekID, version: version, context: maps.Clone(c), ctxArg: arg, rand: rand.Reader}, nil
}

// Wrap implements age.Recipient.
func (r *OfflineRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	s, _, err := r.WrapWithLabels(fileKey)
	return s, err
}

// WrapWithLabels implements age.RecipientWithLabels with the "postquantum" label.
func (r *OfflineRecipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	if len(fileKey) != FileKeySize {
		return nil, nil, fmt.Errorf("custosage: file key of %d bytes, want %d", len(fileKey), FileKeySize)
	}
	blob, err := wrapkey.Wrap(r.rand, r.pub, r.kekID, r.version, r.context, fileKey)
	if err != nil {
		return nil, nil, fmt.Errorf("custosage: offline wrap: %w", err)
	}
	r.set(Receipt{KEKID: r.kekID, KEKVersion: r.version})
	return []*age.Stanza{newStanza(r.kekID, r.version, r.ctxArg, blob)}, []string{"postquantum"}, nil
}

// Identity unwraps custos stanzas through the Custos API (authorised and
// logged by the cluster).
type Identity struct {
	receipts
	u   Unwrapper
	ctx context.Context
	// Expect, if set, lists context fields the stanza must carry with
	// exactly these values (e.g. the dataset and archive id being
	// restored); a stanza that does not is refused before any API call.
	Expect map[string]string
}

// NewIdentity returns an identity unwrapping through u; ctx bounds the API
// call made during age.Decrypt.
func NewIdentity(ctx context.Context, u Unwrapper) *Identity {
	return &Identity{u: u, ctx: ctx}
}

// ErrContextMismatch: the stanza's context is not the one expected.
var ErrContextMismatch = errors.New("custosage: the archive's key is bound to another context than expected")

// Unwrap implements age.Identity. With no custos stanza it returns an error
// wrapping age.ErrIncorrectIdentity; a custos stanza that is malformed or
// does not unwrap is a fatal error.
func (id *Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		if s.Type != StanzaType {
			continue
		}
		p, err := ParseStanza(s)
		if err != nil {
			return nil, err
		}
		for k, v := range id.Expect {
			if got, ok := p.Context[k]; !ok || got != v {
				return nil, fmt.Errorf("%w: %s is %q, want %q", ErrContextMismatch, k, got, v)
			}
		}
		resp, err := id.u.Unwrap(id.ctx, p.KEKID, p.Blob, p.Context)
		if err != nil {
			return nil, fmt.Errorf("custosage: unwrap with kek %s version %d: %w", p.KEKID, p.KEKVersion, err)
		}
		if len(resp.Plaintext) != FileKeySize {
			clear(resp.Plaintext)
			return nil, fmt.Errorf("custosage: unwrapped a %d-byte key, want a %d-byte age file key", len(resp.Plaintext), FileKeySize)
		}
		id.set(Receipt{KEKID: p.KEKID, KEKVersion: p.KEKVersion, LogIndex: resp.LogIndex})
		return resp.Plaintext, nil
	}
	return nil, fmt.Errorf("%w: no %q stanza", age.ErrIncorrectIdentity, StanzaType)
}

var (
	_ age.RecipientWithLabels = (*OnlineRecipient)(nil)
	_ age.RecipientWithLabels = (*OfflineRecipient)(nil)
	_ age.Identity            = (*Identity)(nil)
	_ Wrapper                 = (*client.Client)(nil)
	_ Unwrapper               = (*client.Client)(nil)
)
