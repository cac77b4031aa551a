// KEK policy: who may use a KEK, from where, how it is split and escrowed,
// and its canonical JSON encoding.

package ceremony

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// MaxActivationTTL is the longest a reconstituted KEK may stay in memory.
const MaxActivationTTL = 24 * time.Hour

// Policy is a KEK's policy, set by kek.create and replaced by kek.policy.
// The zero Policy is invalid (threshold 0).
//
// Its canonical JSON is an object with every field present, in this order:
//
//	{"threshold":2,"activation_ttl_seconds":300,
//	 "wrap":{"roles":[…],"identities":[…],"regions":[…]},
//	 "unwrap":{"roles":[…],"identities":[…],"regions":[…]},
//	 "required_context":[…],"escrow":{"enabled":true,"m":2}}
//
// with nil and empty lists both written [] (and read back as nil).
type Policy struct {
	// Threshold t: node shares needed to reconstitute a version, 2..MaxThreshold
	// (one share per node; t = 1 would let a single node use the KEK alone).
	// The state machine checks t against the number of nodes.
	Threshold int
	// ActivationTTL is how long a reconstituted key stays cached in memory:
	// whole seconds, 0..MaxActivationTTL; 0 means per request (never cached).
	ActivationTTL time.Duration
	Wrap          Access   // who may wrap through the API, and from where
	Unwrap        Access   // who may unwrap, and from where
	Context       []string // context fields every wrap and unwrap must carry: sorted set of [a-z][a-z0-9._-]{0,63}
	Escrow        Escrow
}

// Access grants an operation on a KEK to identities and roles, from regions.
// An empty Access grants nothing. Every list is a sorted set of at most
// MaxListLen entries.
type Access struct {
	Roles      []string // every identity of these roles: node, agent, officer, auditor, operator
	Identities []string // single identities, "<role>/<name>" (e.g. "agent/agent-payroll"), none of a role in Roles
	// Regions the caller's identity must be in: EU/EEA codes. Required when
	// anything is granted, empty otherwise. The state machine checks them
	// against the cluster's allowed regions.
	Regions []string
}

// Grants reports whether a grants the operation to the identity of role
// and name: to every identity of the role, or to "<role>/<name>". The
// region is checked apart (InRegion). Nodes (who enforce policy) and the
// offline verifier (who checks it against the log) share this rule.
func (a Access) Grants(role, name string) bool {
	return slices.Contains(a.Roles, role) || slices.Contains(a.Identities, role+"/"+name)
}

// InRegion reports whether a allows callers from region.
func (a Access) InRegion(region string) bool { return slices.Contains(a.Regions, region) }

// Escrow is the optional officer escrow of each new KEK version: an M-of-N
// split of the seed among the N officers, each share sealed to one officer.
type Escrow struct {
	Enabled bool
	// M: escrow shares needed to recover, 2..MaxEscrowM when enabled (one
	// share alone would let one officer hold the whole key), 0 when not.
	// The state machine checks M against the number of officers.
	M int
}

// Validate reports whether p follows the rules on its fields, with an error
// naming the first field that does not. It is deterministic and looks at p
// alone: limits that depend on the cluster (nodes, officers, allowed
// regions) are the state machine's to check.
func (p Policy) Validate() error {
	if p.Threshold < 2 || p.Threshold > MaxThreshold {
		return fmt.Errorf("threshold %d: must be 2-%d (no single node may use a kek alone)", p.Threshold, MaxThreshold)
	}
	if p.ActivationTTL < 0 || p.ActivationTTL > MaxActivationTTL || p.ActivationTTL%time.Second != 0 {
		return fmt.Errorf("activation ttl %v: must be whole seconds from 0 (per request) to %v", p.ActivationTTL, MaxActivationTTL)
	}
	if err := p.Wrap.validate("wrap"); err != nil {
		return err
	}
	if err := p.Unwrap.validate("unwrap"); err != nil {
		return err
	}
	if err := checkSet("required context", p.Context, checkContextKey); err != nil {
		return err
	}
	switch {
	case p.Escrow.Enabled && (p.Escrow.M < 2 || p.Escrow.M > MaxEscrowM):
		return fmt.Errorf("escrow m %d: must be 2-%d (one officer's share alone must not recover a kek)", p.Escrow.M, MaxEscrowM)
	case !p.Escrow.Enabled && p.Escrow.M != 0:
		return fmt.Errorf("escrow m %d with escrow disabled: must be 0", p.Escrow.M)
	}
	return nil
}

func (a Access) validate(op string) error {
	if err := checkSet(op+" roles", a.Roles, checkRole); err != nil {
		return err
	}
	if err := checkSet(op+" identities", a.Identities, checkPrincipal); err != nil {
		return err
	}
	for _, id := range a.Identities {
		role, _, _ := strings.Cut(id, "/")
		for _, r := range a.Roles {
			if r == role {
				return fmt.Errorf("%s identities: %q is redundant: every %s is granted", op, id, role)
			}
		}
	}
	if err := checkRegions(op+" regions", a.Regions); err != nil {
		return err
	}
	granted := len(a.Roles)+len(a.Identities) > 0
	switch {
	case granted && len(a.Regions) == 0:
		return fmt.Errorf("%s regions: required when %s is granted to anyone", op, op)
	case !granted && len(a.Regions) > 0:
		return fmt.Errorf("%s regions: set, but %s is granted to nobody", op, op)
	}
	return nil
}

// policyJSON, accessJSON and escrowJSON are Policy's wire form.
type policyJSON struct {
	Threshold            int        `json:"threshold"`
	ActivationTTLSeconds int64      `json:"activation_ttl_seconds"`
	Wrap                 accessJSON `json:"wrap"`
	Unwrap               accessJSON `json:"unwrap"`
	RequiredContext      []string   `json:"required_context"`
	Escrow               escrowJSON `json:"escrow"`
}

type accessJSON struct {
	Roles      []string `json:"roles"`
	Identities []string `json:"identities"`
	Regions    []string `json:"regions"`
}

type escrowJSON struct {
	Enabled bool `json:"enabled"`
	M       int  `json:"m"`
}

// list returns xs, or an empty slice for nil, so that it encodes as [].
func list(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// nilEmpty returns nil for an empty slice.
func nilEmpty(xs []string) []string {
	if len(xs) == 0 {
		return nil
	}
	return xs
}

func (a Access) wire() accessJSON {
	return accessJSON{Roles: list(a.Roles), Identities: list(a.Identities), Regions: list(a.Regions)}
}

func (a accessJSON) access() Access {
	return Access{Roles: nilEmpty(a.Roles), Identities: nilEmpty(a.Identities), Regions: nilEmpty(a.Regions)}
}

// MarshalJSON writes p's canonical form (see [Policy]). It does not validate.
func (p Policy) MarshalJSON() ([]byte, error) {
	return marshal(policyJSON{
		Threshold:            p.Threshold,
		ActivationTTLSeconds: int64(p.ActivationTTL / time.Second),
		Wrap:                 p.Wrap.wire(),
		Unwrap:               p.Unwrap.wire(),
		RequiredContext:      list(p.Context),
		Escrow:               escrowJSON{Enabled: p.Escrow.Enabled, M: p.Escrow.M},
	})
}

// UnmarshalJSON reads a policy, rejecting unknown fields. It does not check
// canonical form or validate; ParseProposal does both.
func (p *Policy) UnmarshalJSON(data []byte) error {
	var j policyJSON
	if err := strictDecode(data, &j); err != nil {
		return err
	}
	if max := int64(MaxActivationTTL / time.Second); j.ActivationTTLSeconds < 0 || j.ActivationTTLSeconds > max {
		return fmt.Errorf("activation_ttl_seconds %d: not in 0..%d", j.ActivationTTLSeconds, max)
	}
	*p = Policy{
		Threshold:     j.Threshold,
		ActivationTTL: time.Duration(j.ActivationTTLSeconds) * time.Second,
		Wrap:          j.Wrap.access(),
		Unwrap:        j.Unwrap.access(),
		Context:       nilEmpty(j.RequiredContext),
		Escrow:        Escrow{Enabled: j.Escrow.Enabled, M: j.Escrow.M},
	}
	return nil
}

// marshal encodes v as compact JSON without HTML escaping. Every value this
// package encodes is made of strings, integers, booleans and lists of them,
// which encoding/json cannot fail on.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// strictDecode decodes one JSON value into v, rejecting unknown fields and
// trailing data.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the value")
	}
	return nil
}
