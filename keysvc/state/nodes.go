// The node table's records: what a node is registered with, and the
// Rules its description follows.

package state

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// NodeInfo describes a node as the node table records it. A node gives its
// own with Node.Info; a leader registers another's with AddNode.
type NodeInfo struct {
	ID       string `json:"id"`        // node id (identity name rule)
	Region   string `json:"region"`    // EU/EEA code, upper case
	RaftAddr string `json:"raft_addr"` // address raft peers dial
	APIAddr  string `json:"api_addr"`  // https base URL of the node's API
	// Keys are the node's two checkpoint verifier key lines (ECDSA P-256 and
	// ML-DSA-65, as ledger.NodeKey.MarshalText writes them), under the name
	// KeyName(cluster, ID).
	Keys string `json:"keys"`
	// KEM is the node's X-Wing public key (standard base64), to which peers
	// seal the shares they release to it. Its seed is sealed by the node's HSM.
	KEM string `json:"kem"`
	// Cert is the fingerprint (identity.Fingerprint) of the node's TLS
	// certificate: the only certificate its raft and peer connections may
	// present. Empty only for nodes without TLS (in-memory tests).
	Cert string `json:"cert,omitempty"`
}

// NodeKey parses i.Keys.
func (i NodeInfo) NodeKey() (ledger.NodeKey, error) {
	var k ledger.NodeKey
	err := k.UnmarshalText([]byte(i.Keys))
	return k, err
}

// validate checks i for a node of cluster. It is deterministic: Apply uses
// it. Errors wrap ErrInvalidNode.
func (i NodeInfo) validate(cluster string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidNode, fmt.Sprintf(format, args...))
	}
	if err := (identity.Identity{Cluster: cluster, Name: i.ID, Role: identity.RoleNode, Region: i.Region}).Validate(); err != nil {
		return bad("id %q, region %q: %v", i.ID, i.Region, err)
	}
	if !printable(i.RaftAddr) {
		return bad("raft address %q", i.RaftAddr)
	}
	if err := CheckAPIAddr(i.APIAddr); err != nil || len(i.APIAddr) > MaxAddrLen {
		return bad("api address %q: want an https base URL of at most %d bytes", i.APIAddr, MaxAddrLen)
	}
	k, err := i.NodeKey()
	if err != nil {
		return bad("keys: %v", err)
	}
	if want := ledger.KeyName(cluster, i.ID); k.Name != want {
		return bad("keys are named %q, want %q", k.Name, want)
	}
	if _, err := i.KEMKey(); err != nil {
		return bad("kem: %v", err)
	}
	if i.Cert != "" && !validFingerprint(i.Cert) {
		return bad("cert %q: want sha256:<64 lower-case hex digits>", i.Cert)
	}
	return nil
}

// NodeAdd is the node.add ceremony parameters that register i.
func (i NodeInfo) NodeAdd() ceremony.NodeAdd {
	return ceremony.NodeAdd{ID: i.ID, Region: i.Region, RaftAddr: i.RaftAddr, APIAddr: i.APIAddr, Keys: i.Keys, KEM: i.KEM, Cert: i.Cert}
}

// KEMKey decodes i.KEM: a 1216-byte X-Wing public key.
func (i NodeInfo) KEMKey() ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(i.KEM)
	if err != nil || len(b) != wrapkey.PublicKeySize {
		return nil, fmt.Errorf("not a base64 X-Wing public key of %d bytes", wrapkey.PublicKeySize)
	}
	return b, nil
}

// validFingerprint: "sha256:" and 64 lower-case hex digits.
func validFingerprint(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MaxAddrLen bounds a node's raft and API addresses, in bytes.
const MaxAddrLen = 256

// MaxInitOfficers is the most officers cluster.init may name (Init.Officers).
const MaxInitOfficers = maxOfficers

// printable: 1..MaxAddrLen bytes of UTF-8 without spaces or control characters.
func printable(s string) bool {
	return s != "" && len(s) <= MaxAddrLen && utf8.ValidString(s) &&
		strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

// NodeRecord is a node table row. Removed nodes stay, so that their keys
// keep verifying the checkpoints they signed.
type NodeRecord struct {
	NodeInfo
	Added   uint64 `json:"added"`             // ledger index of the node.add entry that registered it
	Removed bool   `json:"removed,omitempty"` // removed from the cluster
}

// CheckAPIAddr accepts an https base URL with a host and nothing after it.
func CheckAPIAddr(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return errors.New("required")
	case err != nil:
		return err
	case u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q is not an https base URL (https://host:port)", s)
	}
	return nil
}
