// The node's own keys: an ECDSA P-256 identity key inside the HSM and an
// ML-DSA-65 key whose seed is stored in DataDir sealed by an HSM AES key
// (checkpoints), and the ECDSA P-256 TLS key inside the HSM.

package keysvc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/internal/secmem"
	"github.com/custos-eu/custos/keysvc/kek"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/nodetls"
	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// HSM labels of a node's own keys. A token serves one node.
const (
	// LabelIdentity: the node identity key, ECDSA P-256, generated in the
	// HSM; signs checkpoints (and, later, attestations).
	LabelIdentity = "custos:node:identity"
	// LabelMLDSASeal: the AES-256 key that seals the node's ML-DSA-65 seed.
	LabelMLDSASeal = "custos:node:mldsa-seal"
	// LabelKEMSeal: the AES-256 key that seals the node's X-Wing KEM seed,
	// the key peers seal released shares to.
	LabelKEMSeal = "custos:node:kem-seal"
	// LabelTLS: the node's TLS key (nodetls.LabelTLS).
	LabelTLS = nodetls.LabelTLS
)

// kemSeedFile, in DataDir, holds the node KEM seed sealed under LabelKEMSeal.
const kemSeedFile = "node-kem.sealed"

// mldsaSeedFile, in DataDir, holds the ML-DSA-65 seed sealed under
// LabelMLDSASeal (nonce || ciphertext || tag), the AAD binding cluster and node.
const mldsaSeedFile = "node-mldsa.sealed"

// nodeKeys holds the signing keys. The ML-DSA private key is in memory (no
// HSM implements ML-DSA); zero wipes it.
type nodeKeys struct {
	name string // ledger.KeyName(cluster, id)
	pub  ledger.NodeKey
	text string // pub.MarshalText

	mu sync.RWMutex // guards ml and kem against zero while in use
	ec crypto.Signer
	ml *mldsa65.PrivateKey

	// kem opens shares peers release to this node; its seed lives in
	// locked memory and is wiped by zero. kemPub is its public key.
	kem    *secmem.Buffer
	kemPub []byte
}

func seedAAD(cluster, nodeID string) []byte {
	return []byte("custos.eu/node-mldsa-seed/v1\x00" + cluster + "\x00" + nodeID)
}

func kemSeedAAD(cluster, nodeID string) []byte {
	return []byte("custos.eu/node-kem-seed/v1\x00" + cluster + "\x00" + nodeID)
}

// loadNodeKeys opens (creating on first start) the node's identity key and
// ML-DSA-65 key. A sealed seed that does not open is an error, never a reason
// to make a new key: the registered public key would stop matching.
func loadNodeKeys(tok hsm.Token, dataDir, cluster, nodeID string) (*nodeKeys, error) {
	ec, err := tok.Signer(LabelIdentity)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		ec, err = tok.GenerateSigner(LabelIdentity)
	}
	if err != nil {
		return nil, fmt.Errorf("keysvc: node identity key: %w", err)
	}
	ecPub, ok := ec.Public().(*ecdsa.PublicKey)
	if !ok || ecPub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("keysvc: node identity key %q is not ECDSA P-256", LabelIdentity)
	}

	seed, err := loadSeed(tok, LabelMLDSASeal, filepath.Join(dataDir, mldsaSeedFile), seedAAD(cluster, nodeID))
	if err != nil {
		return nil, err
	}
	mlPub, ml := mldsa65.NewKeyFromSeed(seed)
	clear(seed[:])

	kemSeed, err := loadSeed(tok, LabelKEMSeal, filepath.Join(dataDir, kemSeedFile), kemSeedAAD(cluster, nodeID))
	if err != nil {
		*ml = mldsa65.PrivateKey{}
		return nil, err
	}
	kem := secmem.New(len(kemSeed))
	copy(kem.Bytes(), kemSeed[:])
	clear(kemSeed[:])
	kemPub, err := wrapkey.PublicKey(kem.Bytes())
	if err != nil {
		kem.Destroy()
		*ml = mldsa65.PrivateKey{}
		return nil, fmt.Errorf("keysvc: node KEM key: %w", err)
	}

	k := &nodeKeys{name: ledger.KeyName(cluster, nodeID), ec: ec, ml: ml, kem: kem, kemPub: kemPub}
	k.pub = ledger.NodeKey{Name: k.name, ECDSA: ecPub, MLDSA: mlPub}
	text, err := k.pub.MarshalText()
	if err != nil {
		k.zero()
		return nil, fmt.Errorf("keysvc: node keys: %w", err)
	}
	k.text = string(text)
	return k, nil
}

// loadSeed opens the 32-byte seed sealed at path under the HSM AES key
// label, or makes, seals and stores one (creating the key if needed).
func loadSeed(tok hsm.Token, label, path string, aad []byte) (*[32]byte, error) {
	seed := new([32]byte)
	sealed, err := os.ReadFile(path)
	if err == nil {
		plain, err := tok.Open(label, sealed, aad)
		if err != nil {
			return nil, fmt.Errorf("keysvc: open sealed seed %s (with HSM key %q): %w", path, label, err)
		}
		defer clear(plain)
		if len(plain) != len(seed) {
			return nil, fmt.Errorf("keysvc: sealed seed %s: %d bytes, want %d", path, len(plain), len(seed))
		}
		copy(seed[:], plain)
		return seed, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keysvc: seed: %w", err)
	}
	if err := tok.GenerateAESKey(label); err != nil && !errors.Is(err, hsm.ErrKeyExists) {
		return nil, fmt.Errorf("keysvc: seed sealing key %q: %w", label, err)
	}
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	sealed, err = tok.Seal(label, seed[:], aad)
	if err != nil {
		clear(seed[:])
		return nil, fmt.Errorf("keysvc: seal seed with %q: %w", label, err)
	}
	if err := atomicfile.Write(path, sealed, 0o600); err != nil {
		clear(seed[:])
		return nil, fmt.Errorf("keysvc: store sealed seed %s: %w", path, err)
	}
	return seed, nil
}

// sign signs c as a checkpoint note with both keys.
func (k *nodeKeys) sign(c ledger.Checkpoint) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.ml == nil {
		return nil, ErrClosed
	}
	return ledger.SignCheckpoint(c, k.name, k.ec, k.ml)
}

// zero wipes the ML-DSA private key; signing fails afterwards.
func (k *nodeKeys) zero() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ml != nil {
		*k.ml = mldsa65.PrivateKey{}
		k.ml = nil
	}
	if k.kem != nil {
		k.kem.Destroy()
		k.kem = nil
	}
	k.ec = nil
}

// openRelease opens a share a peer released to this node, sealed to its KEM
// key, and verifies it against v's commitments.
func (k *nodeKeys) openRelease(cluster string, v *kek.Version, r kek.Release, sealed []byte) (*threshold.Share, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.kem == nil {
		return nil, ErrClosed
	}
	key, err := kek.SeedEscrowKey(k.kem.Bytes())
	if err != nil {
		return nil, err
	}
	return kek.OpenRelease(key, cluster, v, r, sealed)
}
