// Package threshold implements Pedersen verifiable secret sharing over
// ristretto255, used to split a KEK version's secret t-of-n over the cluster's
// nodes and, optionally, m-of-N over security officers (escrow).
//
// The package is pure: no I/O, no clocks, no global state except the fixed
// generator H. All functions are safe for concurrent use; a Share, Dealing or
// Scalar must not be mutated while another goroutine reads it.
//
// # Use
//
//	secret, d, err := threshold.Deal(rand.Reader, t, n) // fresh secret
//	d, err := threshold.Split(rand.Reader, secret, t, n) // existing secret (escrow)
//	err := threshold.Verify(d.Commitments, &d.Shares[i])  // one holder checks its share
//	secret, err := threshold.Recover(commitments, shares) // any t valid shares
//	seed, err := threshold.DeriveSeed(secret)             // the 32-byte KEK seed
//
// Callers zeroise what they hold: the secret (Scalar.SetUint64(0)), each
// Share (Share.Zeroize) and each Dealing (Dealing.Zeroize). The Go runtime may
// still hold copies (moved stacks, freed heap); zeroising is best effort.
//
// # Scheme
//
// G is the ristretto255 generator. H is a second generator whose discrete log
// to G nobody knows:
//
//	H = hash_to_ristretto255(msg = "", DST = "custos/v1/threshold/pedersen-H")
//
// (RFC 9380 suite ristretto255_XMD:SHA-512_R255MAP_RO_, circl's
// group.Ristretto255.HashToElement). The dealer picks two random polynomials
// of degree t-1 over the scalars, f with f(0) = secret and a blinding
// polynomial g, publishes the commitments
//
//	C_j = f_j·G + g_j·H   for j = 0..t-1
//
// and gives holder i (1 ≤ i ≤ n) the share (i, S = f(i), R = g(i)). A holder
// verifies S·G + R·H == Σ_j C_j·i^j. Any t valid shares give f(0) by Lagrange
// interpolation at 0.
//
// Why Pedersen and not Feldman: Feldman publishes f_0·G = secret·G, so an
// adversary who can compute discrete logs (a quantum computer) reads the
// secret off the public commitments and undoes the post-quantum protection of
// the X-Wing KEK. Pedersen's C_0 = secret·G + g_0·H is perfectly hiding: it
// reveals nothing about the secret, to any adversary. Binding (a dealer cannot
// open a commitment two ways) rests on discrete log, which only matters while
// the dealing is in use.
//
// # Randomness
//
// Deal and Split read randomness from rnd in a fixed order, so a
// deterministic reader gives a reproducible dealing (see testdata/). Every
// random scalar takes exactly 64 bytes from rnd, read as a little-endian
// integer and reduced mod the group order ℓ (bias < 2^-259). Deal draws the
// secret first, drawing again while it is zero; Split then draws g_0, then
// f_1, g_1, f_2, g_2, … up to f_{t-1}, g_{t-1}.
//
// # Recovery with bad shares
//
// Recover rejects duplicate indices (ErrDuplicateIndex) and verifies every
// share it is given. If at least t shares are valid it interpolates from the t
// valid shares with the lowest indices and succeeds even if others were bad;
// RecoverReport does the same and also returns the bad indices, so the caller
// can log the misbehaving holders. If fewer than t are valid, it fails with an
// error that matches ErrNotEnoughShares (errors.Is) and, if any share was bad,
// also *BadShareError naming every bad index (errors.As).
//
// # Encodings
//
// Scalars are 32 bytes little-endian and must be canonical (< ℓ); elements
// are 32-byte ristretto255 encodings (RFC 9496) and must be canonical. Both
// parsers are strict: exact length, known version, and re-marshalling an
// accepted input gives the same bytes. Errors are *ParseError.
//
//	Share (67 bytes):  0x01 || index uint16 big-endian (1..255) || S (32) || R (32)
//	Commitments:       0x01 || t uint8 (1..255) || C_0 (32) || … || C_{t-1} (32)
//
// A commitment must not be the identity element. The version byte is the
// first thing a parser reads; a new version will get a new value.
//
// # KEK seed
//
// DeriveSeed maps the shared secret to the 32-byte KEK seed:
//
//	seed = HKDF-SHA256(IKM = 32-byte encoding of secret, salt = empty,
//	                   info = "custos/v1/kek-seed", L = 32)
package threshold
