package keysvc

import (
	"testing"

	"github.com/custos-eu/custos/keysvc/client"
)

// The codes this package and the client SDK both define are the same
// strings: the API passes keysvc's codes through, and a peer channel code
// named like an API code means what it means there.
func TestCodesMatchTheClient(t *testing.T) {
	for _, c := range []struct{ here, client string }{
		{CodeAccessDenied, client.CodeAccessDenied},
		{CodeRegionDenied, client.CodeRegionDenied},
		{CodeContextMissing, client.CodeContextMissing},
		{CodeInvalidContext, client.CodeInvalidContext},
		{CodeKEKDisabled, client.CodeKEKDisabled},
		{CodeNoActiveVersion, client.CodeNoActiveVersion},
		{CodeMalformedBlob, client.CodeMalformedBlob},
		{CodeWrongKEK, client.CodeWrongKEK},
		{CodeUnwrapFailed, client.CodeUnwrapFailed},
		{CodeInvalidPlaintext, client.CodeInvalidPlaintext},
		{CodeSharesUnavailable, client.CodeSharesUnavailable},
		{CodeNotCaughtUp, client.CodeNotCaughtUp},
		{CodeUnknownKEK, client.CodeUnknownKEK},
		{CodeUnknownVersion, client.CodeUnknownVersion},
		{CodeKEKDestroyed, client.CodeKEKDestroyed},
		{CodeNotInitialized, client.CodeNotInitialized},
		{CodeNotSupportedYet, client.CodeNotSupportedYet},
		{CodeNotProposer, client.CodeNotProposer},
		{CodeProposalExists, client.CodeProposalExists},
		{CodeUnknownProposal, client.CodeUnknownProposal},

		{peerNotLeader, client.CodeNotLeader},
		{peerNoQuorum, client.CodeNoQuorum},
		{peerTooLarge, client.CodeTooLarge},
		{peerSeal, client.CodeSealRefused},
		{peerLiveShare, client.CodeLiveShare},
		{peerDiscard, client.CodeDiscardRefused},
		{peerRelease, client.CodeReleaseRefused},
		{peerMalformed, client.CodeMalformedRequest},
		{peerBadRequest, client.CodeBadRequest},
		{peerRejected, client.CodeRejected},
		{peerInternalErr, client.CodeInternal},
	} {
		if c.here != c.client {
			t.Errorf("keysvc code %q, client code %q", c.here, c.client)
		}
	}
}
