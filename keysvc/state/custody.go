// The custody index: which kek.activate entry first used each signed client
// request, and which node released its share for which activation. Apply
// keeps it from the log alone, so every node answers alike; peers read it
// before releasing (no replayed request, one release per peer per
// activation).

package state

import (
	"bytes"
	"strconv"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/ledger"
)

var (
	// bucketActivations: cert fingerprint 0x00 request id -> index of the
	// first ok kek.activate entry with that request.
	bucketActivations = []byte("activations")
	// bucketReleases: uint64 activation index || node id -> index of that
	// node's first ok kek.release for the activation.
	bucketReleases = []byte("releases")
)

var (
	activatePrefix = []byte(`","type":"` + ledger.TypeActivate + `"`)
	releasePrefix  = []byte(`","type":"` + ledger.TypeRelease + `"`)
)

// hasType reports whether raw, a canonical entry, has the type whose
// prefix (`","type":"<type>"`) is given, without parsing it: the type
// comes right after the index and time.
func hasType(raw, prefix []byte) bool {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"index":`))
	if !ok {
		return false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`,"time":"`))
	return ok && len(rest) > len(TimeFormat) && bytes.HasPrefix(rest[len(TimeFormat):], prefix)
}

// recordCustody indexes raw, log entry index, if it is an ok activation or
// release. First wins: a later duplicate is left for peers to refuse.
func recordCustody(tx *bbolt.Tx, index uint64, raw []byte) error {
	act, rel := hasType(raw, activatePrefix), hasType(raw, releasePrefix)
	if !act && !rel {
		return nil
	}
	e, err := ledger.ParseEntry(raw)
	if err != nil || e.Outcome != ledger.OutcomeOK {
		return nil
	}
	var b *bbolt.Bucket
	var key []byte
	if act {
		if b, err = tx.CreateBucketIfNotExists(bucketActivations); err != nil {
			return err
		}
		key = activationKey(e.Actor.CertFingerprint, e.RequestID)
	} else {
		a, ok := parseIndex(e.Details["activation"])
		if !ok {
			return nil
		}
		if b, err = tx.CreateBucketIfNotExists(bucketReleases); err != nil {
			return err
		}
		key = releaseKey(a, e.Node)
	}
	if b.Get(key) != nil {
		return nil
	}
	return b.Put(key, u64(index))
}

func activationKey(fp, requestID string) []byte { return []byte(fp + "\x00" + requestID) }

func releaseKey(activation uint64, node string) []byte { return append(u64(activation), node...) }

func lookupIndex(tx *bbolt.Tx, bucket, key []byte) (uint64, bool) {
	b := tx.Bucket(bucket)
	if b == nil {
		return 0, false
	}
	v := b.Get(key)
	if len(v) != 8 {
		return 0, false
	}
	return getU64(b, key), true
}

// ActivationOf returns the first activation of request id by the
// certificate with fingerprint fp.
func ActivationOf(tx *bbolt.Tx, fp, requestID string) (uint64, bool) {
	return lookupIndex(tx, bucketActivations, activationKey(fp, requestID))
}

// ReleaseOf returns node's first release for the activation at index a.
func ReleaseOf(tx *bbolt.Tx, a uint64, node string) (uint64, bool) {
	return lookupIndex(tx, bucketReleases, releaseKey(a, node))
}

// parseIndex parses a log index written in canonical decimal (as
// strconv.FormatUint writes it: no sign, no leading zeros).
func parseIndex(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && strconv.FormatUint(v, 10) == s
}
