// The bodies of the release call: a node asking a peer for its share of a
// KEK version, for one activation.

package peer

// ReleaseRequest asks a peer for its share of a KEK version for one
// activation: the kek.activate entry at log index Activation, which carries
// the client's signed request. The peer reads that entry from its own log
// and checks it itself; it takes nothing else on the requester's word but
// Context, whose hash the client signed.
type ReleaseRequest struct {
	KEKID      string `json:"kek_id"`
	Version    uint32 `json:"version"`
	Activation uint64 `json:"activation"`
	// Context is the unwrap's context (single operations; empty for a
	// batch): the peer checks it against the signed context hash, then the
	// KEK policy's required fields.
	Context map[string]string `json:"context,omitempty"`
}

// ReleaseResponse carries the peer's share sealed to the requester's node
// KEM key (kek.SealRelease): only the requester's HSM-sealed KEM seed opens it.
type ReleaseResponse struct {
	Index  uint16 `json:"index"`
	Sealed []byte `json:"sealed"`
}
