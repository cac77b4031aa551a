package peer

import (
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Entry is a log entry as a follower forwards it to the leader: fields, not
// canonical bytes, because the leader assigns index and time.
type Entry struct {
	Time       time.Time         `json:"time,omitzero"`
	Type       string            `json:"type"`
	Actor      Actor             `json:"actor"`
	Node       string            `json:"node,omitempty"`
	KEKID      string            `json:"kek_id,omitempty"`
	KEKVersion uint32            `json:"kek_version,omitempty"`
	RequestID  string            `json:"request_id,omitempty"`
	Outcome    string            `json:"outcome"`
	Reason     string            `json:"reason,omitempty"`
	Details    map[string]string `json:"details,omitempty"`
}

// Actor is ledger.Actor on the wire.
type Actor struct {
	Identity        string `json:"identity"`
	Role            string `json:"role,omitempty"`
	Region          string `json:"region,omitempty"`
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
}

// FromLedger is e on the wire.
func FromLedger(e ledger.Entry) Entry {
	return Entry{
		Time: e.Time, Type: e.Type, Actor: Actor(e.Actor), Node: e.Node, KEKID: e.KEKID, KEKVersion: e.KEKVersion,
		RequestID: e.RequestID, Outcome: string(e.Outcome), Reason: e.Reason, Details: e.Details,
	}
}

// Ledger is w as a ledger entry.
func (w Entry) Ledger() ledger.Entry {
	return ledger.Entry{
		Time: w.Time, Type: w.Type, Actor: ledger.Actor(w.Actor), Node: w.Node, KEKID: w.KEKID, KEKVersion: w.KEKVersion,
		RequestID: w.RequestID, Outcome: ledger.Outcome(w.Outcome), Reason: w.Reason, Details: w.Details,
	}
}
