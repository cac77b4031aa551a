// KEK records as the read API serves them, and destruction certificates.

package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/custos-eu/custos/keysvc/errcode"
)

// Codes of KEK ceremonies and reads (ceremony refusals carry the code in
// the ceremony's record; reads answer it as an error). Documented in
// package errcode.
const (
	CodeUnknownKEK     = errcode.UnknownKEK
	CodeNotDestroyed   = errcode.NotDestroyed
	CodeBadEscrowShare = errcode.BadEscrowShare
	CodeSealRefused    = errcode.SealRefused
	CodeLiveShare      = errcode.LiveShare
	CodeReleaseRefused = errcode.ReleaseRefused
	CodeDiscardRefused = errcode.DiscardRefused
)

// KEKs is GET /v1/keks.
type KEKs struct {
	KEKs []KEK `json:"keks"`
}

// KEK is GET /v1/keks/{id}: a KEK's policy, legal hold and versions. Nothing
// in it is secret.
type KEK struct {
	ID        string          `json:"id"`
	Policy    json.RawMessage `json:"policy"` // ceremony.Policy canonical JSON
	LegalHold *LegalHold      `json:"legal_hold,omitempty"`
	Created   uint64          `json:"created"` // log index of the ceremony.execute entry
	Versions  []KEKVersion    `json:"versions"`
}

// LegalHold is a KEK's legal hold.
type LegalHold struct {
	Reason   string `json:"reason"`
	Ceremony string `json:"ceremony"`
	Entry    uint64 `json:"entry"`
}

// KEKVersion is one version: state (active, disabled, destroyed), the
// X-Wing public key, the Pedersen commitments of its t-of-n split, who
// holds the shares with their signed statements, and its escrow.
type KEKVersion struct {
	Version         uint32     `json:"version"`
	State           string     `json:"state"`
	Threshold       int        `json:"threshold"`
	PublicKey       []byte     `json:"public_key"`
	Commitments     []byte     `json:"commitments"`
	Shares          []KEKShare `json:"shares"`
	Escrow          *KEKEscrow `json:"escrow,omitempty"`
	Created         uint64     `json:"created"` // log index of the ceremony.execute that dealt it
	Ceremony        string     `json:"ceremony"`
	Recovered       []uint64   `json:"recovered,omitempty"`
	Destroyed       uint64     `json:"destroyed,omitempty"`
	DestroyCeremony string     `json:"destroy_ceremony,omitempty"`
	Attested        []string   `json:"attested,omitempty"` // nodes that attested the destruction
}

// KEKShare is one node's share: its index, the share sealed under that
// node's HSM key (useless without it; the statement binds its SHA-256), and
// the node's signed statement (a signed note) that it verified and sealed it.
type KEKShare struct {
	Node      string `json:"node"`
	Index     uint16 `json:"index"`
	Sealed    []byte `json:"sealed,omitempty"` // sealed under the node's HSM key; cleared once destroyed
	Statement string `json:"statement"`
}

// KEKEscrow is a version's officer escrow: m of Officers recover it; each
// Sealed[i] is Officers[i]'s share sealed to their X-Wing key (CSTE format).
type KEKEscrow struct {
	Cluster     string   `json:"cluster"`
	M           int      `json:"m"`
	Officers    []string `json:"officers"`
	Commitments []byte   `json:"commitments"`
	Link        []byte   `json:"link"`
	Sealed      [][]byte `json:"sealed"`
}

// DestructionCertificate is GET /v1/keks/{id}/versions/{v}/destruction-certificate.
type DestructionCertificate struct {
	Cluster        string            `json:"cluster"`
	KEKID          string            `json:"kek_id"`
	Version        uint32            `json:"version"`
	PublicKey      []byte            `json:"public_key"`
	Ceremony       string            `json:"ceremony"`
	Approvers      []string          `json:"approvers"`
	Destroyed      uint64            `json:"destroyed"`
	Holders        []DestroyedHolder `json:"holders"`
	Complete       bool              `json:"complete"`
	EscrowOfficers []string          `json:"escrow_officers,omitempty"`
	EscrowM        int               `json:"escrow_m,omitempty"`
}

// DestroyedHolder is one share holder in a certificate: its signed
// statement once it has destroyed its sealing key, or not attested yet.
type DestroyedHolder struct {
	Node      string `json:"node"`
	Attested  bool   `json:"attested"`
	Statement string `json:"statement,omitempty"`
	Entry     uint64 `json:"entry,omitempty"`
}

// KEKs lists every KEK.
func (c *Client) KEKs(ctx context.Context) (KEKs, error) {
	var out KEKs
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/keks"})
	if err != nil {
		return out, err
	}
	return out, resp.decode("keks", &out)
}

// KEK returns KEK id.
func (c *Client) KEK(ctx context.Context, id string) (KEK, error) {
	var out KEK
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/keks/" + url.PathEscape(id)})
	if err != nil {
		return out, err
	}
	return out, resp.decode("kek", &out)
}

// DestructionCertificate returns the destruction certificate of KEK id version v.
func (c *Client) DestructionCertificate(ctx context.Context, id string, v uint32) (DestructionCertificate, error) {
	var out DestructionCertificate
	resp, err := c.do(ctx, request{method: http.MethodGet,
		path: "/v1/keks/" + url.PathEscape(id) + "/versions/" + strconv.FormatUint(uint64(v), 10) + "/destruction-certificate"})
	if err != nil {
		return out, err
	}
	return out, resp.decode("destruction certificate", &out)
}
