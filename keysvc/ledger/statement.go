// Node statements: short texts a node signs with both its keys, as a
// c2sp.org/signed-note, to attest what it did with its HSM (a KEK share
// sealed, a sealing key destroyed). Auditors verify them offline with the
// node's keys from genesis or its node.add ceremony.

package ledger

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/note"
)

// MaxStatementSize bounds a signed statement VerifyStatement accepts.
const MaxStatementSize = 16 << 10

// ErrStatement: a statement that is malformed or not signed by the node.
var ErrStatement = errors.New("ledger: statement not signed by the node")

// SignStatement signs text (newline-terminated lines of printable UTF-8)
// under the node key name with ECDSA (ec, typically the HSM identity key)
// and ML-DSA-65 (ml).
func SignStatement(text, name string, ec crypto.Signer, ml *mldsa65.PrivateKey) ([]byte, error) {
	es, err := NewECDSASigner(name, ec)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign statement: %w", err)
	}
	ms, err := NewMLDSASigner(name, ml)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign statement: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, es, ms)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign statement: %w", err)
	}
	return msg, nil
}

// VerifyStatement opens a signed statement and returns its text if it
// carries both key's ECDSA and ML-DSA-65 signatures and they verify.
// Signatures by other keys are ignored. Errors wrap ErrStatement. It never
// panics and is deterministic, so the state machine may call it.
func VerifyStatement(msg []byte, key NodeKey) (string, error) {
	if len(msg) > MaxStatementSize {
		return "", fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrStatement, len(msg), MaxStatementSize)
	}
	ec, ml, err := key.verifiers()
	if err != nil {
		return "", fmt.Errorf("%w: key %q: %v", ErrStatement, key.Name, err)
	}
	n, err := note.Open(msg, note.VerifierList(ec, ml))
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrStatement, key.Name, err)
	}
	has := func(v *verifier) bool {
		for _, s := range n.Sigs {
			if s.Name == v.name && s.Hash == v.hash {
				return true
			}
		}
		return false
	}
	var missing []string
	if !has(ec) {
		missing = append(missing, "ecdsa")
	}
	if !has(ml) {
		missing = append(missing, "ml-dsa-65")
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %q has no %s signature", ErrStatement, key.Name, strings.Join(missing, " or "))
	}
	return n.Text, nil
}

// The statements of KEK custody (docs/keks.md). Nodes sign them; the state
// machine and auditors rebuild them from public facts and compare.

// ShareSealedStatement is the text a node signs after sealing its share
// (index) of KEK kekID version in its HSM, for ceremony proposal: every
// public fact the share is bound to.
func ShareSealedStatement(cluster, node, kekID string, version uint32, index uint16, publicKey, commitments, sealed []byte, proposal string) string {
	return "custos/v1 kek share sealed\n" +
		"cluster " + cluster + "\n" +
		"node " + node + "\n" +
		"kek " + kekID + "\n" +
		"version " + strconv.FormatUint(uint64(version), 10) + "\n" +
		"share " + strconv.FormatUint(uint64(index), 10) + "\n" +
		"label " + kekLabel(kekID, version) + "\n" +
		"public-key " + sha256Text(publicKey) + "\n" +
		"commitments " + sha256Text(commitments) + "\n" +
		"sealed " + sha256Text(sealed) + "\n" +
		"ceremony " + proposal + "\n"
}

// ShareDestroyedStatement is the text a node signs after destroying its
// sealing key of KEK kekID version, destroyed by ceremony proposal.
func ShareDestroyedStatement(cluster, node, kekID string, version uint32, proposal string) string {
	return "custos/v1 kek share destroyed\n" +
		"cluster " + cluster + "\n" +
		"node " + node + "\n" +
		"kek " + kekID + "\n" +
		"version " + strconv.FormatUint(uint64(version), 10) + "\n" +
		"label " + kekLabel(kekID, version) + "\n" +
		"ceremony " + proposal + "\n"
}

// kekLabel is the HSM label of a node's sealing key of a KEK version, as
// keysvc/kek.Label makes it (a test there keeps the two equal).
func kekLabel(id string, version uint32) string {
	return "custos:kek:" + id + ":" + strconv.FormatUint(uint64(version), 10)
}

func sha256Text(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
