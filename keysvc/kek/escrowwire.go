// An escrow record from its wire form: the encoded fields the API and the
// log carry (commitments, link scalar, sealed shares), for readers that
// hold no node runtime (the CLI, auditors).

package kek

import (
	"fmt"
	"slices"

	"github.com/cloudflare/circl/group"

	"github.com/custos-eu/custos/threshold"
)

// ParseEscrowRecord builds the EscrowRecord of a version's escrow from its
// encoded fields: commitments as threshold.Commitments' encoding and link
// as a ristretto255 scalar. It checks that these decode, nothing more.
func ParseEscrowRecord(cluster string, m int, officers []string, commitments, link []byte, sealed [][]byte) (*EscrowRecord, error) {
	c, err := threshold.ParseCommitments(commitments)
	if err != nil {
		return nil, err
	}
	l := group.Ristretto255.NewScalar()
	if err := l.UnmarshalBinary(link); err != nil {
		return nil, fmt.Errorf("escrow link: %w", err)
	}
	return &EscrowRecord{Cluster: cluster, Threshold: m, Officers: slices.Clone(officers),
		Commitments: c, Link: l, Sealed: slices.Clone(sealed)}, nil
}
