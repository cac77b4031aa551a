// Names kept until their last users outside this package switch to the
// ledger vocabulary. Do not use them in new code.

package keysvc

import (
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// Deprecated: use ledger.KEKActive.
const KEKActive = ledger.KEKActive

// Deprecated: use ledger.KEKDestroyed.
const KEKDestroyed = ledger.KEKDestroyed

// Deprecated: use ledger.Origin.
func Origin(cluster string) string { return ledger.Origin(cluster) }

// Deprecated: use ledger.KeyName.
func KeyName(cluster, nodeID string) string { return ledger.KeyName(cluster, nodeID) }

// Deprecated: use state.KEKEscrow.
type KEKEscrow = state.KEKEscrow

// Deprecated: use state.Init.
type Init = state.Init

// Deprecated: use state.Ceremony.
type Ceremony = state.Ceremony

// Deprecated: use state.StatusPending.
const StatusPending = state.StatusPending

// Deprecated: use state.StatusExecuted.
const StatusExecuted = state.StatusExecuted
