// Officer escrow: a second, m-of-N split of a KEK version's secret among
// security officers, each share sealed with HPKE to the officer's X-Wing key,
// and the recovery that restores the version onto new node HSMs from it.
// The package doc explains the scheme; docs/escrow.md walks through it.

package kek

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"github.com/cloudflare/circl/kem/xwing"

	"github.com/custos-eu/custos/keysvc/wrapkey"
	"github.com/custos-eu/custos/threshold"
)

// Errors of officer escrow that callers branch on. Each comes wrapped with
// the KEK id and version and, where there is one, the officer and share index.
var (
	// ErrNoEscrow: the version has no escrow record.
	ErrNoEscrow = errors.New("kek: this kek version has no officer escrow")
	// ErrWrongOfficer: the officer is not an escrow holder of this version,
	// or the sealed share at their place names another officer.
	ErrWrongOfficer = errors.New("kek: escrow share belongs to another officer")
	// ErrWrongOfficerKey: the X-Wing key given is not the one the share was
	// sealed to (checked by fingerprint before decrypting).
	ErrWrongOfficerKey = errors.New("kek: escrow share was sealed to another x-wing key than the one given")
	// ErrEscrowShareCorrupt: the sealed share does not parse or does not
	// open: it was modified, or sealed for another cluster, kek or version.
	ErrEscrowShareCorrupt = errors.New("kek: escrow share is corrupt or was sealed for another cluster, kek or version")
	// ErrEscrowShareMismatch: the share opened but does not match the escrow
	// commitments.
	ErrEscrowShareMismatch = errors.New("kek: escrow share does not match the escrow commitments")
	// ErrEscrowLink: the escrow commitments do not hide the same secret as
	// the node commitments (threshold.VerifyLink failed).
	ErrEscrowLink = errors.New("kek: link check failed: the escrow does not hold the same key as the nodes")
	// ErrNotEnoughEscrowShares: fewer valid escrow shares than m.
	ErrNotEnoughEscrowShares = errors.New("kek: not enough valid escrow shares to recover the key")
)

// The EscrowShare format; the package doc and docs/escrow.md define it.
const (
	EscrowMagic         = "CSTE"
	EscrowFormatVersion = 1
	// EscrowSuiteXWingSHA256AES256GCM is HPKE base mode with KEM X-Wing
	// (0x647a), KDF HKDF-SHA256 (0x0001) and AEAD AES-256-GCM (0x0002).
	EscrowSuiteXWingSHA256AES256GCM uint16 = 1
	// MaxEscrowNameLen bounds cluster names and officer ids, 1..64 bytes
	// of [a-z0-9._-] (every identity label fits).
	MaxEscrowNameLen = 64
	// EscrowFingerprintSize is the size of a recipient key fingerprint.
	EscrowFingerprintSize = sha256.Size
	// escrowCiphertextSize: an encoded threshold.Share plus the GCM tag.
	escrowCiphertextSize = threshold.ShareLen + wrapkey.TagSize
	// escrowInfoLabel opens the HPKE info of every escrow share.
	escrowInfoLabel = "custos/v1/escrow-share"
)

var escrowSuite = hpke.NewSuite(hpke.KEM_XWING, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES256GCM)

// EscrowOfficer is one escrow holder: an officer id and the X-Wing public
// key (wrapkey.PublicKeySize bytes) its share is sealed to.
type EscrowOfficer struct {
	ID          string
	XWingPublic []byte
}

// EscrowConfig asks DealWithEscrow to escrow the new version with officers.
type EscrowConfig struct {
	Cluster   string          // the dealing cluster's name, bound into every sealed share
	Threshold int             // m: officer shares needed to recover, 1 ≤ m ≤ N
	Officers  []EscrowOfficer // N holders; Officers[i] gets share index i+1
}

// valid checks every field of c, and parses each officer key, so that a
// deal that starts will not fail half way for a bad input.
func (c *EscrowConfig) valid() error {
	if c == nil {
		return errors.New("no escrow config")
	}
	if err := validName("cluster", c.Cluster); err != nil {
		return err
	}
	n := len(c.Officers)
	if c.Threshold < 1 || c.Threshold > n || n > threshold.MaxShares {
		return fmt.Errorf("escrow %d-of-%d: want 1 ≤ m ≤ N ≤ %d", c.Threshold, n, threshold.MaxShares)
	}
	seen := make(map[string]bool, n)
	for i, o := range c.Officers {
		if err := validName("officer id", o.ID); err != nil {
			return err
		}
		if seen[o.ID] {
			return fmt.Errorf("officer %q named twice", o.ID)
		}
		seen[o.ID] = true
		if _, err := parseXWingPublic(o.XWingPublic); err != nil {
			return fmt.Errorf("officer %d %q: %w", i+1, o.ID, err)
		}
	}
	return nil
}

// EscrowRecord is the public escrow part of a KEK version's record, to be
// replicated with its Version. Nothing in it is secret: the shares are sealed
// to the officers, the commitments are perfectly hiding, and Link is a
// uniformly random scalar.
type EscrowRecord struct {
	Cluster     string                // the cluster that dealt the escrow, bound into each sealed share
	Threshold   int                   // m
	Officers    []string              // officer ids; Officers[i] holds share index i+1; N = len(Officers)
	Commitments threshold.Commitments // escrow commitments C'_0..C'_{m-1}
	Link        group.Scalar          // δ = r_0 − r'_0: C_0 − C'_0 = δ·H (threshold.Link)
	Sealed      [][]byte              // Sealed[i]: Officers[i]'s share, an EscrowShare blob
}

// clone returns a copy of r sharing nothing mutable with it.
func (r *EscrowRecord) clone() *EscrowRecord {
	c := *r
	c.Officers = append([]string(nil), r.Officers...)
	c.Commitments = append(threshold.Commitments(nil), r.Commitments...)
	for j := range c.Commitments {
		c.Commitments[j] = c.Commitments[j].Copy()
	}
	if r.Link != nil {
		c.Link = r.Link.Copy()
	}
	c.Sealed = make([][]byte, len(r.Sealed))
	for i := range r.Sealed {
		c.Sealed[i] = bytes.Clone(r.Sealed[i])
	}
	return &c
}

// check validates rec's shape against v. It does not check the link or
// open anything.
func (rec *EscrowRecord) check(v *Version) error {
	if rec == nil {
		return ErrNoEscrow
	}
	if v == nil {
		return errors.New("kek: no kek version record")
	}
	if err := validName("cluster", rec.Cluster); err != nil {
		return fmt.Errorf("escrow record: %w", err)
	}
	n := len(rec.Officers)
	if rec.Threshold < 1 || rec.Threshold > n || n > threshold.MaxShares {
		return fmt.Errorf("escrow record: %d-of-%d, want 1 ≤ m ≤ N ≤ %d", rec.Threshold, n, threshold.MaxShares)
	}
	if len(rec.Sealed) != n {
		return fmt.Errorf("escrow record: %d sealed shares for %d officers", len(rec.Sealed), n)
	}
	if len(rec.Commitments) != rec.Threshold {
		return fmt.Errorf("escrow record: %d commitments for m=%d", len(rec.Commitments), rec.Threshold)
	}
	if len(v.Commitments) != v.Threshold {
		return fmt.Errorf("kek record: %d commitments for t=%d", len(v.Commitments), v.Threshold)
	}
	if rec.Link == nil || rec.Link.Group() != group.Ristretto255 {
		return errors.New("escrow record: link is not a ristretto255 scalar")
	}
	seen := make(map[string]bool, n)
	for _, id := range rec.Officers {
		if err := validName("officer id", id); err != nil {
			return fmt.Errorf("escrow record: %w", err)
		}
		if seen[id] {
			return fmt.Errorf("escrow record: officer %q named twice", id)
		}
		seen[id] = true
	}
	return nil
}

// index returns the share index of officerID in rec, or 0.
func (rec *EscrowRecord) index(officerID string) uint16 {
	for i, id := range rec.Officers {
		if id == officerID {
			return uint16(i + 1)
		}
	}
	return 0
}

// DealWithEscrow is Deal that also escrows the new version with officers:
// from the one secret s it deals the node shares t-of-n, as Deal does, and a
// second, independent Pedersen dealing m-of-N of the same s for esc.Officers,
// whose shares it seals to the officers' X-Wing keys (SealEscrowShare). The
// returned EscrowRecord carries the escrow commitments, the sealed shares and
// the link δ that proves both dealings hide the same s (VerifyEscrowRecord).
// s and the escrow shares are zeroised before it returns; the caller hands
// out and zeroises the node shares as after Deal.
//
// Randomness is read in a fixed order, so a deterministic rnd gives a
// reproducible result: the node dealing (threshold.Deal), then the escrow
// dealing (threshold.Split), then 64 bytes per officer, in index order, for
// the HPKE encapsulation.
func DealWithEscrow(rnd io.Reader, id string, version uint32, t, n int, esc *EscrowConfig) (*Version, []threshold.Share, *EscrowRecord, error) {
	if err := checkIDVersion(id, version); err != nil {
		return nil, nil, nil, err
	}
	if err := esc.valid(); err != nil {
		return nil, nil, nil, fmt.Errorf("deal kek %q v%d with escrow: %w", id, version, err)
	}
	secret, d, err := threshold.Deal(rnd, t, n)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("deal kek %q v%d: %w", id, version, err)
	}
	defer zeroScalar(secret)
	v, rec, err := escrowDeal(rnd, id, version, secret, d, esc)
	if err != nil {
		d.Zeroize()
		return nil, nil, nil, fmt.Errorf("deal kek %q v%d with escrow: %w", id, version, err)
	}
	return v, d.Shares, rec, nil
}

// escrowDeal builds the version record for secret and its node dealing d,
// and escrows secret with esc.
func escrowDeal(rnd io.Reader, id string, version uint32, secret group.Scalar, d *threshold.Dealing, esc *EscrowConfig) (*Version, *EscrowRecord, error) {
	v, err := versionFor(id, version, secret, d)
	if err != nil {
		return nil, nil, err
	}
	m, nOff := esc.Threshold, len(esc.Officers)
	e, err := threshold.Split(rnd, secret, m, nOff)
	if err != nil {
		return nil, nil, err
	}
	defer e.Zeroize()
	link, err := threshold.Link(d.Commitments, d.Shares[:v.Threshold], e.Commitments, e.Shares[:m])
	if err != nil {
		return nil, nil, err
	}
	rec := &EscrowRecord{
		Cluster:     esc.Cluster,
		Threshold:   m,
		Officers:    make([]string, nOff),
		Commitments: e.Commitments,
		Link:        link,
		Sealed:      make([][]byte, nOff),
	}
	for i, o := range esc.Officers {
		rec.Officers[i] = o.ID
		if rec.Sealed[i], err = SealEscrowShare(rnd, esc.Cluster, v, o, &e.Shares[i]); err != nil {
			return nil, nil, err
		}
	}
	return v, rec, nil
}

// versionFor derives the seed from secret and returns the public record of
// the version that d deals. The caller zeroises secret.
func versionFor(id string, version uint32, secret group.Scalar, d *threshold.Dealing) (*Version, error) {
	seed, err := threshold.DeriveSeed(secret)
	if err != nil {
		return nil, err
	}
	defer clear(seed[:])
	pub, err := wrapkey.PublicKey(seed[:])
	if err != nil {
		return nil, err
	}
	return &Version{
		ID: id, Version: version,
		Threshold: d.Commitments.Threshold(), Shares: len(d.Shares),
		PublicKey: pub, Commitments: d.Commitments,
	}, nil
}

// SealEscrowShare seals one escrow share of KEK version v, dealt by cluster,
// to officer: HPKE base mode, X-Wing / HKDF-SHA256 / AES-256-GCM, to
// officer.XWingPublic, with the info and AAD the package doc gives. It reads
// exactly 64 bytes from rnd. It does not check sh against any commitments;
// DealWithEscrow seals only shares it has just dealt.
func SealEscrowShare(rnd io.Reader, cluster string, v *Version, officer EscrowOfficer, sh *threshold.Share) ([]byte, error) {
	if v == nil || sh == nil {
		return nil, errors.New("kek: seal escrow share: no version or no share")
	}
	fail := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("seal escrow share %d (officer %q) of kek %q v%d: %w", sh.Index, officer.ID, v.ID, v.Version, err)
	}
	es := &EscrowShare{
		Suite:      EscrowSuiteXWingSHA256AES256GCM,
		Cluster:    cluster,
		KEKID:      v.ID,
		KEKVersion: v.Version,
		OfficerID:  officer.ID,
		Index:      sh.Index,
		Recipient:  EscrowKeyFingerprint(officer.XWingPublic),
	}
	info, err := es.info()
	if err != nil {
		return fail(err)
	}
	pk, err := parseXWingPublic(officer.XWingPublic)
	if err != nil {
		return fail(err)
	}
	plain, err := sh.MarshalBinary()
	if err != nil {
		return fail(err)
	}
	defer clear(plain)
	sender, err := escrowSuite.NewSender(pk, info)
	if err != nil {
		return fail(err)
	}
	enc, sealer, err := sender.Setup(rnd)
	if err != nil {
		return fail(fmt.Errorf("hpke setup: %w", err))
	}
	es.Enc = enc
	if es.Ciphertext, err = sealer.Seal(plain, es.appendAAD(nil)); err != nil {
		return fail(err)
	}
	return es.Marshal(), nil
}

// EscrowKey is an officer's X-Wing key pair as escrow needs it. The private
// key need not leave its holder: opening a share asks it for one HPKE open.
// *officer.Signer has OpenHPKE and gives the public key through
// Public().XWingKey(); SeedEscrowKey wraps a raw 32-byte X-Wing seed.
type EscrowKey interface {
	// XWingPublicKey returns the 1216-byte X-Wing public key.
	XWingPublicKey() []byte
	// OpenHPKE opens one HPKE base-mode message (X-Wing, HKDF-SHA256,
	// AES-256-GCM; the first message of the context) sealed to the key, or
	// fails if it does not open.
	OpenHPKE(enc, ciphertext, info, aad []byte) ([]byte, error)
}

// SeedEscrowKey returns the EscrowKey of an X-Wing private key held as its
// 32-byte seed (draft-connolly-cfrg-xwing-kem; the seed wrapkey also uses).
// It keeps a reference to seed, not a copy: the caller clears seed when done.
func SeedEscrowKey(seed []byte) (EscrowKey, error) {
	pub, err := wrapkey.PublicKey(seed)
	if err != nil {
		return nil, fmt.Errorf("kek: escrow key: %w", err)
	}
	return &seedKey{seed: seed, pub: pub}, nil
}

type seedKey struct{ seed, pub []byte }

func (k *seedKey) XWingPublicKey() []byte { return bytes.Clone(k.pub) }

func (k *seedKey) OpenHPKE(enc, ciphertext, info, aad []byte) ([]byte, error) {
	sk, _ := xwing.DeriveKeyPair(k.seed)
	defer func() { *sk = xwing.PrivateKey{} }()
	r, err := escrowSuite.NewReceiver(sk, info)
	if err != nil {
		return nil, err
	}
	opener, err := r.Setup(enc)
	if err != nil {
		return nil, errors.New("hpke: bad enc")
	}
	pt, err := opener.Open(ciphertext, aad)
	if err != nil {
		return nil, errors.New("hpke: does not open")
	}
	return pt, nil
}

// OpenEscrowShare opens officer officerID's escrow share of version v with
// the officer's key and verifies it against the escrow commitments. The
// caller must Zeroize the share. Errors, all wrapped: ErrNoEscrow,
// ErrWrongOfficer (not a holder, or the record holds another officer's share
// in their place), ErrWrongOfficerKey (the key's public half is not the one
// the share names), ErrEscrowShareCorrupt (it does not parse, names another
// cluster, kek or version, or does not open; a failing key.OpenHPKE is
// wrapped too), ErrEscrowShareMismatch.
func OpenEscrowShare(v *Version, rec *EscrowRecord, officerID string, key EscrowKey) (*threshold.Share, error) {
	if err := rec.check(v); err != nil {
		return nil, fmt.Errorf("open escrow share of officer %q: %w", officerID, err)
	}
	idx := rec.index(officerID)
	fail := func(err error) (*threshold.Share, error) {
		if idx == 0 {
			return nil, fmt.Errorf("open escrow share of officer %q for kek %q v%d: %w", officerID, v.ID, v.Version, err)
		}
		return nil, fmt.Errorf("open escrow share %d (officer %q) of kek %q v%d: %w", idx, officerID, v.ID, v.Version, err)
	}
	if idx == 0 {
		return fail(fmt.Errorf("%w: not an escrow holder", ErrWrongOfficer))
	}
	if key == nil {
		return fail(errors.New("no officer key"))
	}
	es, err := rec.sealedAt(v, idx)
	if err != nil {
		return fail(err)
	}
	if fp := EscrowKeyFingerprint(key.XWingPublicKey()); subtle.ConstantTimeCompare(fp[:], es.Recipient[:]) != 1 {
		return fail(fmt.Errorf("%w (sealed to %x…, key given is %x…)", ErrWrongOfficerKey, es.Recipient[:8], fp[:8]))
	}
	info, err := es.info()
	if err != nil {
		return fail(err)
	}
	plain, err := key.OpenHPKE(es.Enc, es.Ciphertext, info, es.appendAAD(nil))
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrEscrowShareCorrupt, err))
	}
	defer clear(plain)
	sh := new(threshold.Share)
	if err := sh.UnmarshalBinary(plain); err != nil || sh.Index != idx {
		sh.Zeroize()
		return fail(ErrEscrowShareCorrupt) // authenticated, so only a broken sealer gets here
	}
	if threshold.Verify(rec.Commitments, sh) != nil {
		sh.Zeroize()
		return fail(ErrEscrowShareMismatch)
	}
	return sh, nil
}

// sealedAt parses the sealed share with index idx and checks that its header
// names what rec and v say it should.
func (rec *EscrowRecord) sealedAt(v *Version, idx uint16) (*EscrowShare, error) {
	es, err := ParseEscrowShare(rec.Sealed[idx-1])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEscrowShareCorrupt, err)
	}
	switch {
	case es.Cluster != rec.Cluster || es.KEKID != v.ID || es.KEKVersion != v.Version:
		return nil, fmt.Errorf("%w: it names cluster %q kek %q v%d", ErrEscrowShareCorrupt, es.Cluster, es.KEKID, es.KEKVersion)
	case es.OfficerID != rec.Officers[idx-1] || es.Index != idx:
		return nil, fmt.Errorf("%w: the record holds share %d of officer %q in this place", ErrWrongOfficer, es.Index, es.OfficerID)
	}
	return es, nil
}

// VerifyEscrowShare is what an officer runs to check their escrow share
// (`custos officer verify-share`): it opens the share with their key, verifies it against the escrow commitments, and checks the
// link from the escrow commitments to the node commitments, so the officer
// knows the share is one of m needed to rebuild this very KEK version. It
// learns the officer's share only, which says nothing about the key, and
// zeroises it. Errors: those of OpenEscrowShare and VerifyEscrowRecord.
//
// What it cannot show is that the node commitments belong to v.PublicKey:
// that rests on the dealer, for officers as for nodes, and recovery checks it.
func VerifyEscrowShare(v *Version, rec *EscrowRecord, officerID string, key EscrowKey) error {
	sh, err := OpenEscrowShare(v, rec, officerID, key)
	if err != nil {
		return err
	}
	sh.Zeroize()
	return VerifyEscrowRecord(v, rec)
}

// VerifyEscrowRecord checks everything public about rec, needing no key: its
// shape, that every sealed share parses and names this cluster, KEK version,
// officer and index, and the link: that the escrow commitments hide the same
// secret as v's node commitments. ErrEscrowLink if the link fails,
// ErrEscrowShareCorrupt or ErrWrongOfficer for a misplaced sealed share.
func VerifyEscrowRecord(v *Version, rec *EscrowRecord) error {
	if err := rec.check(v); err != nil {
		return fmt.Errorf("verify escrow: %w", err)
	}
	for i := range rec.Sealed {
		if _, err := rec.sealedAt(v, uint16(i+1)); err != nil {
			return fmt.Errorf("verify escrow share %d (officer %q) of kek %q v%d: %w", i+1, rec.Officers[i], v.ID, v.Version, err)
		}
	}
	if err := threshold.VerifyLink(v.Commitments, rec.Commitments, rec.Link); err != nil {
		if errors.Is(err, threshold.ErrLinkMismatch) {
			err = ErrEscrowLink
		}
		return fmt.Errorf("verify escrow of kek %q v%d: %w", v.ID, v.Version, err)
	}
	return nil
}

// RecoverFromEscrow rebuilds KEK version v from at least m officers' escrow
// shares (opened with OpenEscrowShare) and returns it as a ready-to-use key;
// the caller must Destroy it. Every share is verified against the escrow
// commitments; bad ones are skipped if m good ones remain. The key must give
// v.PublicKey (ErrKeyMismatch): that end-to-end check, not the link, is what
// makes a recovery trustworthy. Errors: ErrNoEscrow, ErrNotEnoughEscrowShares
// (also matching *threshold.BadShareError naming bad indices, if any),
// threshold.ErrDuplicateIndex, ErrKeyMismatch.
func RecoverFromEscrow(v *Version, rec *EscrowRecord, shares []threshold.Share) (*wrapkey.Key, error) {
	secret, _, err := recoverEscrow(v, rec, shares)
	if err != nil {
		return nil, fmt.Errorf("recover kek %q v%d from escrow: %w", idOf(v), versionOf(v), err)
	}
	seed, err := threshold.DeriveSeed(secret)
	zeroScalar(secret)
	if err != nil {
		return nil, fmt.Errorf("recover kek %q v%d from escrow: %w", v.ID, v.Version, err)
	}
	k, err := wrapkey.NewKey(seed[:], v.ID, v.Version)
	clear(seed[:])
	if err != nil {
		return nil, fmt.Errorf("recover kek %q v%d from escrow: %w", v.ID, v.Version, err)
	}
	return k, nil
}

// RecoverAndRedeal restores KEK version v onto a rebuilt cluster: it recovers
// the secret from at least m escrow shares, as RecoverFromEscrow does
// (checking it against v.PublicKey), deals it afresh t-of-n for the new
// nodes, and zeroises it. It returns
//
//   - the new version record: same ID, Version and PublicKey, so every blob
//     wrapped to v unwraps; new Threshold, Shares and Commitments. It replaces
//     v in the KEK record.
//   - the n new node shares, for SealShare on the new HSMs; the caller
//     zeroises them as after Deal.
//   - the escrow record for the new version: the same officers and sealed
//     shares (they are sealed to officers, not to the lost HSMs) with a new
//     link to the new node commitments, so VerifyEscrowShare keeps working
//     and the escrow can serve again.
//
// It is one function because re-dealing needs the scalar s, not the seed:
// the seed is HKDF(s) and cannot be turned back into s, and s must not
// leave this package. Errors: those of RecoverFromEscrow, and
// threshold.ErrParams for a bad t or n.
func RecoverAndRedeal(rnd io.Reader, v *Version, rec *EscrowRecord, shares []threshold.Share, t, n int) (*Version, []threshold.Share, *EscrowRecord, error) {
	fail := func(err error) (*Version, []threshold.Share, *EscrowRecord, error) {
		return nil, nil, nil, fmt.Errorf("recover kek %q v%d from escrow and redeal %d-of-%d: %w", idOf(v), versionOf(v), t, n, err)
	}
	if t < 1 || t > n || n > threshold.MaxShares {
		return fail(fmt.Errorf("%w: want 1 ≤ t ≤ n ≤ %d", threshold.ErrParams, threshold.MaxShares))
	}
	secret, good, err := recoverEscrow(v, rec, shares)
	if err != nil {
		return fail(err)
	}
	defer zeroScalar(secret)
	d, err := threshold.Split(rnd, secret, t, n)
	if err != nil {
		return fail(err)
	}
	nv, err := versionFor(v.ID, v.Version, secret, d)
	if err == nil && !bytes.Equal(nv.PublicKey, v.PublicKey) {
		err = errors.New("redealt key differs") // recoverEscrow checked the key, so this is a bug
	}
	var link group.Scalar
	if err == nil {
		link, err = threshold.Link(d.Commitments, d.Shares[:t], rec.Commitments, good)
	}
	if err != nil {
		d.Zeroize()
		return fail(err)
	}
	nrec := rec.clone()
	nrec.Link = link
	return nv, d.Shares, nrec, nil
}

// recoverEscrow checks rec, recovers the secret from the escrow shares and
// checks it against v.PublicKey. It returns the secret, which the caller
// zeroises, and the valid shares it used.
func recoverEscrow(v *Version, rec *EscrowRecord, shares []threshold.Share) (group.Scalar, []threshold.Share, error) {
	if err := rec.check(v); err != nil {
		return nil, nil, err
	}
	if len(shares) < rec.Threshold {
		return nil, nil, fmt.Errorf("have %d of %d escrow shares: %w", len(shares), rec.Threshold, ErrNotEnoughEscrowShares)
	}
	secret, bad, err := threshold.RecoverReport(rec.Commitments, shares)
	if errors.Is(err, threshold.ErrNotEnoughShares) {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotEnoughEscrowShares, err)
	}
	if err != nil {
		return nil, nil, err
	}
	seed, err := threshold.DeriveSeed(secret)
	if err != nil {
		zeroScalar(secret)
		return nil, nil, err
	}
	pub, err := wrapkey.PublicKey(seed[:])
	clear(seed[:])
	if err != nil {
		zeroScalar(secret)
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare(pub, v.PublicKey) != 1 {
		zeroScalar(secret)
		return nil, nil, ErrKeyMismatch
	}
	good := make([]threshold.Share, 0, len(shares)-len(bad))
	for _, sh := range shares {
		isBad := false
		for _, b := range bad {
			isBad = isBad || sh.Index == b
		}
		if !isBad {
			good = append(good, sh)
		}
	}
	return secret, good, nil
}

// EscrowKeyFingerprint is the fingerprint of an officer's X-Wing public key
// that a sealed escrow share names: SHA-256 of its 1216 bytes.
func EscrowKeyFingerprint(xwingPublic []byte) [EscrowFingerprintSize]byte {
	return sha256.Sum256(xwingPublic)
}

// EscrowShare is a parsed sealed escrow share: one officer's share of one KEK
// version, HPKE-sealed to the officer's X-Wing key. ParseEscrowShare reads it
// and Marshal writes it; the package doc gives the format.
type EscrowShare struct {
	Suite      uint16
	Cluster    string
	KEKID      string
	KEKVersion uint32
	OfficerID  string
	Index      uint16                      // the share index, 1..255
	Recipient  [EscrowFingerprintSize]byte // EscrowKeyFingerprint of the officer's key
	Enc        []byte                      // HPKE encapsulated key, 1120 bytes
	Ciphertext []byte                      // the sealed 67-byte threshold.Share and the 16-byte tag
}

// EscrowParseError reports a malformed EscrowShare: the offset of the field
// at fault and what is wrong with it. It is the only error ParseEscrowShare
// returns.
type EscrowParseError struct {
	Offset int
	Msg    string
}

func (e *EscrowParseError) Error() string {
	return fmt.Sprintf("kek: malformed escrow share at byte %d: %s", e.Offset, e.Msg)
}

// ParseEscrowShare parses a sealed escrow share strictly: every field in
// range, nothing after the ciphertext. Anything else is an *EscrowParseError.
// The result does not alias b, and its Marshal gives b back.
func ParseEscrowShare(b []byte) (*EscrowShare, error) {
	perr := func(off int, format string, a ...any) error {
		return &EscrowParseError{Offset: off, Msg: fmt.Sprintf(format, a...)}
	}
	r := escrowReader{b: b}
	magic, err := r.next(len(EscrowMagic), "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != EscrowMagic {
		return nil, perr(0, "bad magic, not a sealed escrow share")
	}
	off := r.off
	fv, err := r.next(1, "format version")
	if err != nil {
		return nil, err
	}
	if fv[0] != EscrowFormatVersion {
		return nil, perr(off, "unsupported format version %d", fv[0])
	}
	off = r.off
	s, err := r.next(2, "suite")
	if err != nil {
		return nil, err
	}
	es := &EscrowShare{Suite: binary.BigEndian.Uint16(s)}
	if es.Suite != EscrowSuiteXWingSHA256AES256GCM {
		return nil, perr(off, "unsupported suite %d", es.Suite)
	}
	if es.Cluster, err = r.name("cluster"); err != nil {
		return nil, err
	}
	if es.KEKID, err = r.name("kek id"); err != nil {
		return nil, err
	}
	off = r.off
	kv, err := r.next(4, "kek version")
	if err != nil {
		return nil, err
	}
	if es.KEKVersion = binary.BigEndian.Uint32(kv); es.KEKVersion == 0 {
		return nil, perr(off, "kek version 0")
	}
	if es.OfficerID, err = r.name("officer id"); err != nil {
		return nil, err
	}
	off = r.off
	ix, err := r.next(2, "share index")
	if err != nil {
		return nil, err
	}
	if es.Index = binary.BigEndian.Uint16(ix); es.Index == 0 || es.Index > threshold.MaxShares {
		return nil, perr(off, "share index %d not in 1..%d", es.Index, threshold.MaxShares)
	}
	fp, err := r.next(EscrowFingerprintSize, "recipient fingerprint")
	if err != nil {
		return nil, err
	}
	copy(es.Recipient[:], fp)
	off = r.off
	el, err := r.next(2, "enc length")
	if err != nil {
		return nil, err
	}
	if got := binary.BigEndian.Uint16(el); got != wrapkey.EncSize {
		return nil, perr(off, "enc length %d, suite %d needs %d", got, es.Suite, wrapkey.EncSize)
	}
	enc, err := r.next(wrapkey.EncSize, "enc")
	if err != nil {
		return nil, err
	}
	off = r.off
	cl, err := r.next(2, "ciphertext length")
	if err != nil {
		return nil, err
	}
	if got := binary.BigEndian.Uint16(cl); got != escrowCiphertextSize {
		return nil, perr(off, "ciphertext length %d, want %d", got, escrowCiphertextSize)
	}
	ct, err := r.next(escrowCiphertextSize, "ciphertext")
	if err != nil {
		return nil, err
	}
	if r.off != len(b) {
		return nil, perr(r.off, "%d trailing bytes", len(b)-r.off)
	}
	es.Enc = bytes.Clone(enc)
	es.Ciphertext = bytes.Clone(ct)
	return es, nil
}

// Marshal encodes es. It does not validate: ParseEscrowShare(es.Marshal())
// gives es back for any EscrowShare that ParseEscrowShare or SealEscrowShare
// produced, and rejects the bytes of an invalid one (a field too long for its
// length prefix is written with length 0, which the parser refuses).
func (es *EscrowShare) Marshal() []byte {
	out := es.appendAAD(nil)
	if len(es.Ciphertext) > 0xffff {
		return binary.BigEndian.AppendUint16(out, 0)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(es.Ciphertext)))
	return append(out, es.Ciphertext...)
}

// appendAAD appends es's bytes before the ciphertext length: what HPKE
// authenticates as AAD.
func (es *EscrowShare) appendAAD(out []byte) []byte {
	out = append(out, EscrowMagic...)
	out = append(out, EscrowFormatVersion)
	out = binary.BigEndian.AppendUint16(out, es.Suite)
	out = appendName(out, es.Cluster)
	out = appendName(out, es.KEKID)
	out = binary.BigEndian.AppendUint32(out, es.KEKVersion)
	out = appendName(out, es.OfficerID)
	out = binary.BigEndian.AppendUint16(out, es.Index)
	out = append(out, es.Recipient[:]...)
	if len(es.Enc) > 0xffff {
		return binary.BigEndian.AppendUint16(out, 0)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(es.Enc)))
	return append(out, es.Enc...)
}

// info is the HPKE info that binds the share to its place:
// label || cluster || kek id || kek version || officer id || index, names
// with a uint8 length prefix.
func (es *EscrowShare) info() ([]byte, error) {
	if err := validName("cluster", es.Cluster); err != nil {
		return nil, err
	}
	if err := checkIDVersion(es.KEKID, es.KEKVersion); err != nil {
		return nil, err
	}
	if err := validName("officer id", es.OfficerID); err != nil {
		return nil, err
	}
	if es.Index == 0 || es.Index > threshold.MaxShares {
		return nil, fmt.Errorf("share index %d not in 1..%d", es.Index, threshold.MaxShares)
	}
	out := []byte(escrowInfoLabel)
	out = appendName(out, es.Cluster)
	out = appendName(out, es.KEKID)
	out = binary.BigEndian.AppendUint32(out, es.KEKVersion)
	out = appendName(out, es.OfficerID)
	return binary.BigEndian.AppendUint16(out, es.Index), nil
}

func appendName(out []byte, s string) []byte {
	if len(s) > 0xff {
		return append(out, 0) // the parser rejects an empty name
	}
	out = append(out, byte(len(s)))
	return append(out, s...)
}

// escrowReader hands out consecutive fields of a sealed escrow share.
type escrowReader struct {
	b   []byte
	off int
}

func (r *escrowReader) next(n int, field string) ([]byte, error) {
	if len(r.b)-r.off < n {
		return nil, &EscrowParseError{Offset: r.off, Msg: fmt.Sprintf("truncated %s: need %d bytes, have %d", field, n, len(r.b)-r.off)}
	}
	f := r.b[r.off : r.off+n]
	r.off += n
	return f, nil
}

// name reads a uint8 length and that many bytes of [a-z0-9._-].
func (r *escrowReader) name(field string) (string, error) {
	off := r.off
	l, err := r.next(1, field+" length")
	if err != nil {
		return "", err
	}
	if l[0] == 0 || l[0] > MaxEscrowNameLen {
		return "", &EscrowParseError{Offset: off, Msg: fmt.Sprintf("%s length %d not in 1..%d", field, l[0], MaxEscrowNameLen)}
	}
	off = r.off
	s, err := r.next(int(l[0]), field)
	if err != nil {
		return "", err
	}
	if i := badNameByte(s); i >= 0 {
		return "", &EscrowParseError{Offset: off + i, Msg: fmt.Sprintf("%s byte 0x%02x not in [a-z0-9._-]", field, s[i])}
	}
	return string(s), nil
}

// validName checks a cluster name or officer id: 1..64 bytes of [a-z0-9._-].
func validName(field, s string) error {
	if len(s) == 0 || len(s) > MaxEscrowNameLen {
		return fmt.Errorf("%s length %d not in 1..%d", field, len(s), MaxEscrowNameLen)
	}
	if i := badNameByte([]byte(s)); i >= 0 {
		return fmt.Errorf("%s %q: byte %d not in [a-z0-9._-]", field, s, i)
	}
	return nil
}

func badNameByte(s []byte) int {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return i
		}
	}
	return -1
}

// parseXWingPublic parses an officer's X-Wing public key.
func parseXWingPublic(pub []byte) (kem.PublicKey, error) {
	if len(pub) != wrapkey.PublicKeySize {
		return nil, fmt.Errorf("x-wing public key of %d bytes, want %d", len(pub), wrapkey.PublicKeySize)
	}
	pk, err := xwing.Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("invalid x-wing public key: %w", err)
	}
	return pk, nil
}

// checkIDVersion checks a KEK id and version as Deal does.
func checkIDVersion(id string, version uint32) error {
	if err := wrapkey.ValidateKEKID(id); err != nil {
		return err
	}
	if version == 0 {
		return fmt.Errorf("kek %q: version must be at least 1", id)
	}
	return nil
}

// idOf and versionOf name v in an error even when v is nil.
func idOf(v *Version) string {
	if v == nil {
		return ""
	}
	return v.ID
}

func versionOf(v *Version) uint32 {
	if v == nil {
		return 0
	}
	return v.Version
}
