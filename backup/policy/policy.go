// Package policy reads the backup agent's policy file and decides whether a
// dataset may be sent to a target, before any byte leaves.
//
// The file is TOML, parsed strictly (an unknown key is an error):
//
//	region = "DE"                    # where the agent and its data live (optional)
//
//	[[dataset]]
//	name           = "hr"
//	paths          = ["/srv/hr"]
//	classification = "confidential"
//	residency      = "eu-only"       # or "encrypted-off-region-allowed"
//	kek            = "backups"
//	retention      = "90d"           # how long archives are kept
//	rpo            = "24h"           # newest good backup may be at most this old
//	rto            = "4h"            # a drill must restore within this
//	wrap           = "online"        # or "offline": wrap with the KEK's public key, checked against the log
//
//	[[target]]
//	name         = "offsite"
//	kind         = "s3"              # or "local"
//	region       = "US"              # ISO 3166-1 alpha-2, where the bytes are stored
//	jurisdiction = "US"              # ISO code of the law the operator answers to
//	bucket       = "custos-archives" # s3; "path" for local
//	prefix       = "eu1/"            # s3, optional
//	endpoint     = "https://…"       # s3, optional
//	legal_hold   = false
//	[target.object_lock]             # s3 only
//	mode      = "COMPLIANCE"         # or "GOVERNANCE"
//	retention = "30d"
//
// Durations are Go durations ("36h", "90m") or whole days ("90d").
//
// Decide applies the residency rule: an "eu-only" dataset goes only to a
// target whose region and jurisdiction are both EU/EEA (the regions
// keysvc/identity calls EU/EEA, the same set the cluster uses); an
// "encrypted-off-region-allowed" dataset may go anywhere the policy names,
// as ciphertext only. A target the policy does not name is refused.
package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// Residency of a dataset.
type Residency string

// Residency values.
const (
	EUOnly                    Residency = "eu-only"
	EncryptedOffRegionAllowed Residency = "encrypted-off-region-allowed"
)

// Wrap modes of a dataset: how the agent wraps an archive's file key.
const (
	// WrapOnline asks the cluster to wrap (a logged kek.wrap); the default.
	WrapOnline = "online"
	// WrapOffline wraps with the KEK version's public key, which the agent
	// checks against the key-op log with a pinned trust file.
	WrapOffline = "offline"
)

// Kinds of target.
const (
	KindLocal = "local"
	KindS3    = "s3"
)

// Object Lock modes.
const (
	Governance = "GOVERNANCE"
	Compliance = "COMPLIANCE"
)

// Duration is a time.Duration read from "36h", "90m" or "90d".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("duration %q: want a whole number of days like \"90d\"", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. \"36h\" or \"90d\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	v := time.Duration(d)
	if v > 0 && v%(24*time.Hour) == 0 {
		return []byte(strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"), nil
	}
	return []byte(v.String()), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Dataset is one [[dataset]] table.
type Dataset struct {
	Name           string    `toml:"name"`
	Paths          []string  `toml:"paths"`
	Classification string    `toml:"classification"`
	Residency      Residency `toml:"residency"`
	KEK            string    `toml:"kek"`
	Retention      Duration  `toml:"retention"`
	RPO            Duration  `toml:"rpo"`
	RTO            Duration  `toml:"rto"`
	// Wrap is WrapOnline (also when empty) or WrapOffline.
	Wrap string `toml:"wrap"`
}

// WrapMode returns the dataset's wrap mode: WrapOnline or WrapOffline.
func (d *Dataset) WrapMode() string {
	if d.Wrap == "" {
		return WrapOnline
	}
	return d.Wrap
}

// ObjectLock is a target's [target.object_lock] table.
type ObjectLock struct {
	Mode      string   `toml:"mode"`
	Retention Duration `toml:"retention"`
}

// Target is one [[target]] table.
type Target struct {
	Name         string      `toml:"name"`
	Kind         string      `toml:"kind"`
	Region       string      `toml:"region"`
	Jurisdiction string      `toml:"jurisdiction"`
	Bucket       string      `toml:"bucket"`
	Prefix       string      `toml:"prefix"`
	Endpoint     string      `toml:"endpoint"`
	Path         string      `toml:"path"`
	ObjectLock   *ObjectLock `toml:"object_lock"`
	LegalHold    bool        `toml:"legal_hold"`
}

// Policy is a parsed, validated policy file.
type Policy struct {
	Region   string    `toml:"region"`
	Datasets []Dataset `toml:"dataset"`
	Targets  []Target  `toml:"target"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Load reads and validates the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse reads a policy strictly: TOML syntax, no unknown keys, every
// field valid. Errors say which dataset or target and which key.
func Parse(r io.Reader) (*Policy, error) {
	var p Policy
	md, err := toml.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&p)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("policy: unknown key(s): %s", strings.Join(keys, ", "))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func isRegionCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// Validate checks every dataset and target.
func (p *Policy) Validate() error {
	if p.Region != "" && !isRegionCode(p.Region) {
		return fmt.Errorf("policy: region %q: want an ISO 3166-1 alpha-2 code like \"DE\"", p.Region)
	}
	if len(p.Datasets) == 0 {
		return errors.New("policy: no [[dataset]]")
	}
	if len(p.Targets) == 0 {
		return errors.New("policy: no [[target]]")
	}
	seen := map[string]bool{}
	for i := range p.Datasets {
		d := &p.Datasets[i]
		if err := d.validate(); err != nil {
			return fmt.Errorf("policy: dataset %d (%q): %w", i+1, d.Name, err)
		}
		if seen[d.Name] {
			return fmt.Errorf("policy: dataset %q defined twice", d.Name)
		}
		seen[d.Name] = true
	}
	seen = map[string]bool{}
	for i := range p.Targets {
		t := &p.Targets[i]
		if err := t.validate(); err != nil {
			return fmt.Errorf("policy: target %d (%q): %w", i+1, t.Name, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("policy: target %q defined twice", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

func (d *Dataset) validate() error {
	switch {
	case !nameRE.MatchString(d.Name):
		return fmt.Errorf("name: want 1-64 characters of [a-z0-9._-], starting with a letter or digit")
	case len(d.Paths) == 0:
		return fmt.Errorf("paths: at least one path")
	case d.Classification == "":
		return fmt.Errorf("classification is required")
	case len(d.Classification) > 64:
		return fmt.Errorf("classification: at most 64 bytes")
	case d.Residency != EUOnly && d.Residency != EncryptedOffRegionAllowed:
		return fmt.Errorf("residency %q: want %q or %q", d.Residency, EUOnly, EncryptedOffRegionAllowed)
	case d.Retention <= 0:
		return fmt.Errorf("retention is required (e.g. \"90d\")")
	case d.RPO <= 0:
		return fmt.Errorf("rpo is required (e.g. \"24h\")")
	case d.RTO <= 0:
		return fmt.Errorf("rto is required (e.g. \"4h\")")
	case d.Wrap != "" && d.Wrap != WrapOnline && d.Wrap != WrapOffline:
		return fmt.Errorf("wrap %q: want %q (the default) or %q", d.Wrap, WrapOnline, WrapOffline)
	}
	if err := wrapkey.ValidateKEKID(d.KEK); err != nil {
		return fmt.Errorf("kek: %v", err)
	}
	for _, path := range d.Paths {
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return fmt.Errorf("path %q: want an absolute, clean path", path)
		}
	}
	return nil
}

func (t *Target) validate() error {
	if !nameRE.MatchString(t.Name) {
		return fmt.Errorf("name: want 1-64 characters of [a-z0-9._-], starting with a letter or digit")
	}
	if !isRegionCode(t.Region) {
		return fmt.Errorf("region %q: want an ISO 3166-1 alpha-2 code like \"DE\" or \"US\"", t.Region)
	}
	if !isRegionCode(t.Jurisdiction) {
		return fmt.Errorf("jurisdiction %q: want an ISO 3166-1 alpha-2 code (the law the store's operator answers to)", t.Jurisdiction)
	}
	switch t.Kind {
	case KindLocal:
		if t.Path == "" || !filepath.IsAbs(t.Path) {
			return fmt.Errorf("local target: path must be an absolute directory")
		}
		if t.Bucket != "" || t.Prefix != "" || t.Endpoint != "" {
			return fmt.Errorf("local target: bucket, prefix and endpoint are for s3 targets")
		}
		if t.ObjectLock != nil || t.LegalHold {
			return fmt.Errorf("local target: object_lock and legal_hold need an s3 target (a local directory cannot enforce them)")
		}
	case KindS3:
		if t.Bucket == "" {
			return fmt.Errorf("s3 target: bucket is required")
		}
		if t.Path != "" {
			return fmt.Errorf("s3 target: path is for local targets (use prefix)")
		}
		if t.ObjectLock != nil {
			if t.ObjectLock.Mode != Governance && t.ObjectLock.Mode != Compliance {
				return fmt.Errorf("object_lock.mode %q: want %q or %q", t.ObjectLock.Mode, Governance, Compliance)
			}
			if t.ObjectLock.Retention <= 0 {
				return fmt.Errorf("object_lock.retention is required (e.g. \"30d\")")
			}
		}
	default:
		return fmt.Errorf("kind %q: want %q or %q", t.Kind, KindLocal, KindS3)
	}
	return nil
}

// Dataset returns the dataset called name.
func (p *Policy) Dataset(name string) (*Dataset, bool) {
	for i := range p.Datasets {
		if p.Datasets[i].Name == name {
			return &p.Datasets[i], true
		}
	}
	return nil, false
}

// Target returns the target called name.
func (p *Policy) Target(name string) (*Target, bool) {
	for i := range p.Targets {
		if p.Targets[i].Name == name {
			return &p.Targets[i], true
		}
	}
	return nil, false
}

// Decision is the outcome of Decide. It is recorded in the archive's
// manifest and in the transfer's log entry.
type Decision struct {
	Dataset            string    `json:"dataset"`
	Target             string    `json:"target"`
	Allowed            bool      `json:"allowed"`
	Residency          Residency `json:"residency"`
	TargetRegion       string    `json:"target_region,omitempty"`
	TargetJurisdiction string    `json:"target_jurisdiction,omitempty"`
	// OffRegion: the target's region differs from the policy's region
	// (or, when the policy names none, lies outside the EU/EEA).
	OffRegion bool `json:"off_region"`
	// OutsideEU: the target's region or jurisdiction is outside the EU/EEA.
	OutsideEU bool   `json:"outside_eu"`
	Why       string `json:"why"`
}

// Refusal codes.
const (
	CodeUnknownDataset = "unknown_dataset"
	CodeUnknownTarget  = "unknown_target"
	CodeResidency      = "residency"
)

// RefusedError is a refused transfer.
type RefusedError struct {
	Code     string
	Decision Decision
}

func (e *RefusedError) Error() string {
	return "policy refuses to send dataset " + strconv.Quote(e.Decision.Dataset) + " to target " + strconv.Quote(e.Decision.Target) + ": " + e.Decision.Why
}

// Decide says whether dataset may be sent to target. A refusal is a
// *RefusedError carrying the (not allowed) Decision.
func (p *Policy) Decide(dataset, target string) (Decision, error) {
	dec := Decision{Dataset: dataset, Target: target}
	refuse := func(code, why string, a ...any) (Decision, error) {
		dec.Allowed = false
		dec.Why = fmt.Sprintf(why, a...)
		return dec, &RefusedError{Code: code, Decision: dec}
	}
	d, ok := p.Dataset(dataset)
	if !ok {
		return refuse(CodeUnknownDataset, "the policy names no dataset %q", dataset)
	}
	dec.Residency = d.Residency
	t, ok := p.Target(target)
	if !ok {
		return refuse(CodeUnknownTarget, "the policy names no target %q; only named targets may receive archives", target)
	}
	dec.TargetRegion, dec.TargetJurisdiction = t.Region, t.Jurisdiction
	regionEU, lawEU := identity.IsEUEEA(t.Region), identity.IsEUEEA(t.Jurisdiction)
	dec.OutsideEU = !regionEU || !lawEU
	if p.Region != "" {
		dec.OffRegion = t.Region != p.Region
	} else {
		dec.OffRegion = !regionEU
	}
	switch d.Residency {
	case EUOnly:
		switch {
		case !regionEU:
			return refuse(CodeResidency, "dataset is eu-only and the target stores data in %s, outside the EU/EEA", t.Region)
		case !lawEU:
			return refuse(CodeResidency, "dataset is eu-only and the target's operator answers to %s law, outside the EU/EEA", t.Jurisdiction)
		}
		dec.Why = fmt.Sprintf("eu-only dataset to a target in %s under %s law, both EU/EEA", t.Region, t.Jurisdiction)
	case EncryptedOffRegionAllowed:
		if dec.OutsideEU {
			dec.Why = fmt.Sprintf("dataset may leave the region encrypted; target in %s under %s law receives ciphertext and a manifest naming no file", t.Region, t.Jurisdiction)
		} else {
			dec.Why = fmt.Sprintf("dataset may leave the region encrypted; target in %s under %s law (EU/EEA)", t.Region, t.Jurisdiction)
		}
	default:
		return refuse(CodeResidency, "dataset has unknown residency %q", d.Residency)
	}
	dec.Allowed = true
	return dec, nil
}
