// Errors of a log read or appended by index: the store (ledgerdb) returns
// them, and whoever serves its entries (the API, fakes) passes them on.

package ledger

import "errors"

// Errors callers branch on.
var (
	// ErrIndexOutOfRange: an index or tree size beyond the log's size, or an
	// invalid range (such as a proof for index >= size).
	ErrIndexOutOfRange = errors.New("ledger: index out of range")
	// ErrIndexMismatch: an appended entry's Index is not its position in the log.
	ErrIndexMismatch = errors.New("ledger: entry index does not match its position")
	// ErrCorrupt: stored data is missing or malformed.
	ErrCorrupt = errors.New("ledger: corrupt store")
)
