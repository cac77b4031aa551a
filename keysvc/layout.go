// The check that this release can serve the state on disk: the data
// layout version (below) is migrated or refused when the database opens,
// and a state older than any version (written before nodes had KEM keys)
// is refused at Open, with what to do, rather than run into failures later.

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

// Data layout versions (package state, LayoutVersion): a node's state.db
// records the layout it is in. It is a property of the file, not of the
// replicated state: each node stamps its own database when it opens it
// (at creation, which is before genesis, and on every open), in the
// transaction that sets the database up, and never through raft, so that
// nodes of two releases can run side by side during a rolling upgrade
// without their replicated state differing (state.Digest leaves the
// version out). On open:
//
//   - the same version: nothing to do;
//   - no version (every release before it was recorded) is version 1, and
//     an older version is migrated step by step (state's migrations), then
//     stamped, all in one transaction;
//   - a newer version (a later release wrote it; the binary was rolled
//     back) is refused with *state.NewerLayoutError, naming both versions,
//     and nothing is written.
//
// A snapshot carries its sender's file: Restore refuses one in a newer
// layout (state.CheckLayout) and migrates an older one when it opens it.
// A state older than version 1 (member records without KEM keys) cannot be
// migrated: checkLayout refuses it.

// ErrNewerLayout: the data directory was written by a later release.
var ErrNewerLayout = state.ErrNewerLayout

// openLayout brings the database of tx to state.LayoutVersion, and logs
// what it did.
func (s *stateDB) openLayout(tx *bbolt.Tx) error {
	from, stamped, err := state.OpenLayout(tx)
	if err != nil || !stamped {
		return err
	}
	if from == state.LayoutVersion {
		s.log.Info("keysvc: recorded the data layout version", "path", s.path, "layout_version", state.LayoutVersion)
	} else {
		s.log.Info("keysvc: migrated the data layout", "path", s.path, "from", from, "to", state.LayoutVersion)
	}
	return nil
}
