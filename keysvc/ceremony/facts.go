// Facts about the operations that the node and its tools branch on.

package ceremony

// IsKEK reports whether op acts on a KEK named by its parameters' KEKID:
// the KEK, legal hold and escrow operations.
func (op Operation) IsKEK() bool {
	switch op {
	case OpKEKCreate, OpKEKRotate, OpKEKDisable, OpKEKEnable, OpKEKDestroy,
		OpKEKPolicy, OpLegalHoldSet, OpLegalHoldRelease, OpEscrowRecover:
		return true
	}
	return false
}

// DealsKEK reports whether op needs key material, dealt by the leader,
// before it executes: kek.create, kek.rotate and escrow.recover.
func (op Operation) DealsKEK() bool {
	return op == OpKEKCreate || op == OpKEKRotate || op == OpEscrowRecover
}

// KEKID returns the KEK a proposal of a KEK operation (Operation.IsKEK)
// acts on, and "" for the other operations.
func (p Proposal) KEKID() string {
	if k, ok := p.Params.(interface{ kekID() string }); ok {
		return k.kekID()
	}
	return ""
}

func (ps KEKCreate) kekID() string        { return ps.KEKID }
func (ps KEKRotate) kekID() string        { return ps.KEKID }
func (ps KEKDisable) kekID() string       { return ps.KEKID }
func (ps KEKEnable) kekID() string        { return ps.KEKID }
func (ps KEKDestroy) kekID() string       { return ps.KEKID }
func (ps KEKPolicy) kekID() string        { return ps.KEKID }
func (ps LegalHoldSet) kekID() string     { return ps.KEKID }
func (ps LegalHoldRelease) kekID() string { return ps.KEKID }
func (ps EscrowRecover) kekID() string    { return ps.KEKID }
