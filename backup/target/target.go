// Package target defines where backup archives are stored: a small Target
// interface (put, get, list, delete, with Object Lock retention and legal hold
// where the store supports them) and the local-directory implementation. The
// S3-compatible implementation lives in backup/s3.
package target

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors returned by every implementation (wrap them; test with errors.Is).
var (
	// ErrNotFound: no object by that name.
	ErrNotFound = errors.New("target: object not found")
	// ErrLocked: retention or legal hold forbids deleting (or overwriting) the object.
	ErrLocked = errors.New("target: object is locked (retention or legal hold)")
	// ErrExists: an object by that name exists and the target does not overwrite.
	ErrExists = errors.New("target: object already exists")
	// ErrUnsupported: the target cannot honour a requested option (e.g. retention on a store without Object Lock).
	ErrUnsupported = errors.New("target: option not supported by this target")
	// ErrChecksum: the stored bytes do not match the checksum computed while writing.
	ErrChecksum = errors.New("target: checksum mismatch")
)

// RetentionMode is an Object Lock retention mode.
type RetentionMode string

// Object Lock modes (S3 semantics).
const (
	Governance RetentionMode = "GOVERNANCE"
	Compliance RetentionMode = "COMPLIANCE"
)

// Retention locks an object against deletion until Until.
type Retention struct {
	Mode  RetentionMode
	Until time.Time
}

// PutOptions controls one upload.
type PutOptions struct {
	// Retention, if set, is applied to the object (refused with ErrUnsupported
	// if the target has no lock support).
	Retention *Retention
	// LegalHold places a legal hold on the object.
	LegalHold bool
	// ChecksumSHA256 asks the target to verify a SHA-256 of the content
	// end to end (S3: per-part checksums; local: computed while writing,
	// otherwise not computed at all).
	ChecksumSHA256 bool
	// Metadata is stored with the object (short ASCII keys and values).
	Metadata map[string]string
	// Size is the content length if known (> 0); 0 or -1 mean unknown. A
	// target refuses content whose length differs from a declared Size.
	Size int64
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name     string
	Size     int64
	Modified time.Time
	// SHA256 is the hex SHA-256 of the content when known ("" otherwise).
	SHA256    string
	Retention *Retention
	LegalHold bool
	Metadata  map[string]string
	// VersionID is the store's version id, if any.
	VersionID string
}

// Capabilities says what a target can enforce.
type Capabilities struct {
	// Retention: the target enforces Object Lock retention (deletion refused until Until).
	Retention bool
	// LegalHold: the target enforces legal holds.
	LegalHold bool
}

// Target is an archive store. Names are slash-separated relative keys
// ("dataset/archive-id.age"); implementations refuse names with empty, "." or
// ".." elements or a leading slash.
type Target interface {
	// Put stores r under name. The object becomes visible only once complete.
	Put(ctx context.Context, name string, r io.Reader, opts PutOptions) (ObjectInfo, error)
	// Get opens the object; the caller closes the reader.
	Get(ctx context.Context, name string) (io.ReadCloser, ObjectInfo, error)
	// List returns objects whose name starts with prefix, sorted by name.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the object; ErrLocked if retention or legal hold forbids.
	Delete(ctx context.Context, name string) error
	// Capabilities reports lock support.
	Capabilities() Capabilities
}
