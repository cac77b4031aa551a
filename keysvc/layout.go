// The check that this release can serve the state on disk: a data
// directory written by an earlier release is refused at Open, with what to
// do, rather than run into failures later.

package keysvc

import (
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/state"
)

// ErrOldLayout: the data directory holds state written by an earlier release
// that this release cannot serve. Open returns it inside an *OldLayoutError.
var ErrOldLayout = errors.New("keysvc: state written by an earlier release")

// OldLayoutError is Open's refusal of an earlier release's state: Nodes are
// the current members whose records carry no KEM key (peers release KEK
// shares only sealed to a member's KEM key, so such a cluster cannot serve
// unwraps). It matches ErrOldLayout.
type OldLayoutError struct {
	Dir   string
	Nodes []string
}

func (e *OldLayoutError) Error() string {
	return fmt.Sprintf("keysvc: state in %s was written by an earlier release (node records without KEM keys: %s): "+
		"this release cannot serve it; see docs/operations.md, \"Upgrading to this release\"", e.Dir, strings.Join(e.Nodes, ", "))
}

// Is reports whether target is ErrOldLayout.
func (e *OldLayoutError) Is(target error) bool { return target == ErrOldLayout }

// checkLayout returns an *OldLayoutError if s has genesis and a node record
// that is not removed lacks a KEM key.
func checkLayout(s *stateDB, dir string) error {
	var old []string
	err := s.view(func(tx *bbolt.Tx) error {
		if !state.GenesisDone(tx) {
			return nil
		}
		return state.ForNodes(tx, func(r state.NodeRecord) error {
			if !r.Removed && r.KEM == "" {
				old = append(old, r.ID)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if len(old) > 0 {
		return &OldLayoutError{Dir: dir, Nodes: old}
	}
	return nil
}
