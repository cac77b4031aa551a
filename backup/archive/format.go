package archive

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/custos-eu/custos/backup/policy"
)

// Formats written in the manifest and the index. An archive whose
// manifest is of format /2 has an index of format /2: its JSON lines are
// compressed with zstd before age. The formats /1 of earlier releases (the
// same manifest; JSON lines not compressed) are still read.
const (
	ManifestFormat   = "custos-backup-manifest/2"
	IndexFormat      = "custos-backup-index/2"
	ManifestFormatV1 = "custos-backup-manifest/1"
	IndexFormatV1    = "custos-backup-index/1"
)

// indexFormat is the format of the index that goes with m.
func (m *Manifest) indexFormat() string {
	if m.Format == ManifestFormatV1 {
		return IndexFormatV1
	}
	return IndexFormat
}

// Chunk sizes of the compressor: each chunk of tar stream is one
// independent zstd frame, whose window is at most the chunk.
const (
	DefaultChunkSize = 2 << 20
	MinChunkSize     = 64 << 10
	MaxChunkSize     = 8 << 20
)

// Part describes one stored object of an archive: its size and the SHA-256
// of its bytes (the ciphertext), hex.
type Part struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// KEKRef is the key that wraps the archive's age file keys.
type KEKRef struct {
	ID      string `json:"id"`
	Version uint32 `json:"version"`
	// WrapLogIndex is the key-op log entry of the (online) wrap; 0 when
	// wrapped offline with the version's public key.
	WrapLogIndex uint64 `json:"wrap_log_index,omitempty"`
	// KeyLogIndex is, for an offline wrap, the key-op log entry (the
	// ceremony.execute that dealt the version) against which the agent
	// checked the public key it wrapped with; 0 for an online wrap.
	KeyLogIndex uint64 `json:"key_log_index,omitempty"`
}

// Stats counts what an archive holds. Nothing here names a file.
type Stats struct {
	Files          int64 `json:"files"`
	Dirs           int64 `json:"dirs"`
	Symlinks       int64 `json:"symlinks"`
	SkippedSpecial int64 `json:"skipped_special"` // sockets, devices, FIFOs: not archived
	FileBytes      int64 `json:"file_bytes"`      // sum of regular files' sizes
	TarBytes       int64 `json:"tar_bytes"`       // the tar stream before compression
	ZstdBytes      int64 `json:"zstd_bytes"`      // after compression, before age
}

// Receipt is the key-op log entry attesting the archive's upload.
type Receipt struct {
	LogIndex uint64 `json:"log_index"`
	Target   string `json:"target,omitempty"`
	Object   string `json:"object,omitempty"`
}

// Manifest is the clear part of an archive's description: ids, sizes,
// checksums, key and policy. It travels beside the archive and names no
// file; names and per-file hashes are in the encrypted index.
type Manifest struct {
	Format         string           `json:"format"`
	ArchiveID      string           `json:"archive_id"`
	Dataset        string           `json:"dataset"`
	Classification string           `json:"classification"`
	Created        time.Time        `json:"created"`
	KEK            KEKRef           `json:"kek"`
	Archive        Part             `json:"archive"` // the age file of tar → zstd
	Index          Part             `json:"index"`   // the age file of the index
	ChunkSize      int              `json:"chunk_size"`
	Stats          Stats            `json:"stats"`
	Policy         *policy.Decision `json:"policy,omitempty"`
	Receipt        *Receipt         `json:"receipt,omitempty"`
}

// Marshal encodes m as indented JSON.
func (m *Manifest) Marshal() ([]byte, error) { return json.MarshalIndent(m, "", "  ") }

var (
	idRE     = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{16}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// NewID returns a fresh archive id: the UTC time and 8 random bytes,
// "20261122T183000Z-0123456789abcdef", which sorts by time.
func NewID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id is an archive id as NewID makes.
func ValidID(id string) bool { return idRE.MatchString(id) }

// ParseManifest reads a manifest strictly (unknown fields refused) and checks it.
func ParseManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("archive: manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("archive: manifest: data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the manifest's fields.
func (m *Manifest) Validate() error {
	switch {
	case m.Format != ManifestFormat && m.Format != ManifestFormatV1:
		return fmt.Errorf("archive: manifest format %q, want %q (or %q)", m.Format, ManifestFormat, ManifestFormatV1)
	case !ValidID(m.ArchiveID):
		return fmt.Errorf("archive: manifest archive id %q is malformed", m.ArchiveID)
	case m.Dataset == "":
		return errors.New("archive: manifest names no dataset")
	case m.KEK.ID == "" || m.KEK.Version == 0:
		return errors.New("archive: manifest names no kek id and version")
	case !sha256RE.MatchString(m.Archive.SHA256) || m.Archive.Size <= 0:
		return errors.New("archive: manifest's archive size or sha256 is malformed")
	case !sha256RE.MatchString(m.Index.SHA256) || m.Index.Size <= 0:
		return errors.New("archive: manifest's index size or sha256 is malformed")
	case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize:
		return fmt.Errorf("archive: manifest chunk size %d out of range", m.ChunkSize)
	}
	return nil
}

// Entry types in the index.
const (
	TypeDir     = "dir"
	TypeFile    = "file"
	TypeSymlink = "symlink"
)

// modeMask is the mode bits an archive keeps: permissions, setuid,
// setgid, sticky.
const modeMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// IndexEntry is one record of the encrypted index: the first is a header
// (Format, ArchiveID, Dataset), then one per archive entry in tar order,
// then a trailer (End, Entries).
type IndexEntry struct {
	Format    string `json:"format,omitempty"`
	ArchiveID string `json:"archive_id,omitempty"`
	Dataset   string `json:"dataset,omitempty"`

	Name   string      `json:"name,omitempty"`
	Type   string      `json:"type,omitempty"`
	Mode   fs.FileMode `json:"mode,omitempty"` // permission, setuid, setgid, sticky bits
	MTime  time.Time   `json:"mtime,omitzero"`
	Size   int64       `json:"size,omitempty"`
	SHA256 string      `json:"sha256,omitempty"` // regular files
	Target string      `json:"target,omitempty"` // symlinks

	End     bool  `json:"end,omitempty"`
	Entries int64 `json:"entries,omitempty"`

	// uid and gid are the owner the archive's tar header gives the entry
	// (not in the index): a restore applies them only when asked.
	uid, gid int
}

// maxNameLen bounds entry names.
const maxNameLen = 4096

// checkName refuses a name that could land outside the restore
// directory: absolute, with "..", ".", empty elements or a NUL, or not in
// clean form.
func checkName(name string) error {
	switch {
	case name == "" || len(name) > maxNameLen:
		return fmt.Errorf("entry name of %d bytes", len(name))
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`):
		return fmt.Errorf("entry %q: absolute path", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("entry %q: NUL in name", name)
	}
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "..":
			return fmt.Errorf("entry %q: \"..\" in path", name)
		case "", ".":
			return fmt.Errorf("entry %q: empty or \".\" path element", name)
		}
	}
	return nil
}

// checkLinkTarget refuses a symlink at name whose target is absolute or
// leaves the restore directory (lexically, from the link's directory).
func checkLinkTarget(name, target string) error {
	if target == "" || len(target) > maxNameLen || strings.ContainsRune(target, 0) {
		return fmt.Errorf("symlink %q: malformed target", name)
	}
	if path.IsAbs(target) {
		return fmt.Errorf("symlink %q: absolute target %q escapes the restore directory", name, target)
	}
	j := path.Join(path.Dir(name), target)
	if j == ".." || strings.HasPrefix(j, "../") {
		return fmt.Errorf("symlink %q: target %q escapes the restore directory", name, target)
	}
	return nil
}

// countingHash is an io.Writer that counts and hashes what passes to dst.
type countingHash struct {
	dst io.Writer
	h   interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.dst.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func (c *countingHash) part() Part {
	return Part{Size: c.n, SHA256: hex.EncodeToString(c.h.Sum(nil))}
}

// compareNames orders entry names element by element, the order
// filepath.WalkDir visits a tree in ("a/b" before "a-c"). An archive's
// entries are strictly increasing in it, so a repeated or reordered name
// is caught with no memory of earlier names.
func compareNames(a, b string) int {
	for {
		ea, ra, _ := strings.Cut(a, "/")
		eb, rb, _ := strings.Cut(b, "/")
		if c := strings.Compare(ea, eb); c != 0 {
			return c
		}
		if ra == "" || rb == "" {
			return strings.Compare(ra, rb)
		}
		a, b = ra, rb
	}
}
