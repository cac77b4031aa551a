// The replicated state machine: raft commands applied to a bbolt database
// (DataDir/state.db) holding the cluster meta, the node table and the key-op
// log, all changed together in one transaction per command.

package keysvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-eu/custos/keysvc/errcode"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/raft"
)

// State database layout (top-level buckets):
//
//	meta    "applied"          8-byte BE raft index of the last command applied
//	        "cluster"          cluster name (set at genesis)
//	        "allowed_regions"  JSON array of region codes, sorted (set at genesis)
//	        "genesis"          8-byte BE raft index of the genesis command
//	        "last_time"        8-byte BE Unix nanoseconds of the latest entry time
//	        "init"             8-byte BE raft index of cluster.init (officers named)
//	        "quorum"           decimal M, "default_threshold" decimal t (set at init)
//	        "state_version"    8-byte BE: 1 at init, +1 on every executed ceremony
//	                           (officers, quorum, regions, nodes); a proposal made
//	                           against an older version can no longer execute
//	nodes   node id -> JSON nodeRecord
//	officers    officer id -> JSON Officer (bundle, fingerprint, active)
//	ceremonies  proposal id -> JSON Ceremony (canonical proposal bytes,
//	            accepted approvals, status, refusal code, log indexes)
//	keks    kek id -> JSON KEK (policy, legal hold, versions with public
//	        keys, commitments, sealed shares and the nodes' statements)
//	revocations  "fingerprint:sha256:<hex>" or "identity:<role>/<name>" ->
//	        JSON Revocation (revocations.go); never deleted
//	drills  dataset -> 8-byte BE log index of its newest backup.drill entry,
//	        derived from the log (meta "drills_indexed": the log size it covers)
//	ledger  the ledger package's own bucket (entries, hashes, size)
var (
	bucketMeta   = []byte("meta")
	bucketNodes  = []byte("nodes")
	bucketDrills = []byte("drills")

	keyApplied  = []byte("applied")
	keyCluster  = []byte("cluster")
	keyRegions  = []byte("allowed_regions")
	keyGenesis  = []byte("genesis")
	keyLastTime = []byte("last_time")
	keyDrills   = []byte("drills_indexed")
)

const stateFile = "state.db"

// stateDB implements raft.StateMachine on bbolt.
//
// Apply is deterministic: it reads only the command and the database (no
// clock, HSM, randomness or network); whatever varies (entry times) comes in
// the command. It is idempotent by raft index: the index of the last applied
// command is stored in the same transaction as its effects, and a command at
// or below it is skipped, so the entries raft replays after a restart (those
// after its latest snapshot) change nothing that is already on disk.
//
// A command the state machine rejects (malformed, unknown type, invalid in
// the current state) leaves the state unchanged but for the applied index,
// and returns a *CommandError. A storage failure is not a verdict: the state
// machine then stops (every later Apply and Snapshot fails with
// ErrStateBroken, without touching the database) so the node cannot diverge
// or snapshot a state that lacks commands; a restart replays from the last
// good state.
type stateDB struct {
	path   string
	noSync bool
	log    *slog.Logger
	m      *counters
	onKEK  func() // after a command that may change KEK records; set before raft starts

	// applied mirrors meta "applied" for waiters; appliedCh is closed (and
	// replaced) whenever it advances.
	applied   atomic.Uint64
	logSize   atomic.Uint64 // entries in the key-op log as applied
	appliedMu sync.Mutex
	appliedCh chan struct{}

	// revoked is the revocations bucket in memory, reloaded before the
	// index of a command that may revoke counts as applied.
	revoked revokedCache

	mu     sync.RWMutex // held for writing only while Restore swaps db
	db     *bbolt.DB
	broken error // guarded by mu

	// signed is the latest checkpoint this node signed (DataDir/
	// signed-checkpoint), if hasSigned: no snapshot that contradicts it
	// is installed. Guarded by signedMu, taken after mu.
	signedMu  sync.Mutex
	signed    ledger.Checkpoint
	hasSigned bool
}

func openStateDB(dir string, noSync bool, log *slog.Logger, m *counters) (*stateDB, error) {
	s := &stateDB{path: filepath.Join(dir, stateFile), noSync: noSync, log: log, m: m}
	var err error
	if s.signed, s.hasSigned, err = loadSigned(dir); err != nil {
		return nil, err
	}
	db, err := s.openDB(s.path)
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.revoked.load(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("keysvc: %s: %w", s.path, err)
	}
	s.appliedCh = make(chan struct{})
	s.setApplied()
	return s, nil
}

func (s *stateDB) openDB(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         time.Second, // fail, not hang, if another process holds it
		NoSync:          s.noSync,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: 1 << 30, // address space only; spares remaps (which wait for snapshot readers)
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("keysvc: open %s: locked by another process (is another node using this DataDir?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keysvc: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNodes, bucketOfficers, bucketCeremonies, bucketKEKs, bucketDrills, bucketRevocations} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// A database or snapshot written before the drills index (or by an
		// older node) is indexed up to its log's size once, here.
		n, err := indexDrills(tx)
		if n > 0 {
			s.log.Info("keysvc: indexed restore drills from the log", "entries_scanned", n)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("keysvc: init %s: %w", path, err)
	}
	return db, nil
}

func (s *stateDB) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// view runs fn in a read transaction of the current database.
func (s *stateDB) view(fn func(tx *bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *stateDB) brokenErr() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.broken
}

func (s *stateDB) setBroken(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = fmt.Errorf("%w: %w", ErrStateBroken, err)
		s.log.Error("keysvc: state database failed; applying stopped until restart", "err", err)
	}
	return s.broken
}

// errSkip rolls back the transaction of a command already applied.
var errSkip = errors.New("already applied")

// Apply implements raft.StateMachine.
func (s *stateDB) Apply(index uint64, data []byte) ([]byte, error) {
	s.mu.RLock()
	db, broken := s.db, s.broken
	s.mu.RUnlock()
	if broken != nil {
		return nil, broken
	}
	if db == nil {
		return nil, ErrClosed
	}
	cmd, decodeErr := decodeCommand(data)
	var logSize uint64
	var (
		res    []byte
		reject *CommandError
	)
	err := db.Update(func(tx *bbolt.Tx) error {
		if index <= getU64(tx.Bucket(bucketMeta), keyApplied) {
			return errSkip
		}
		var err error
		if decodeErr != nil {
			err = decodeErr
		} else {
			res, err = applyCommand(tx, index, cmd)
		}
		if err != nil {
			return err
		}
		if sz, err := ledger.Size(tx); err == nil {
			logSize = sz
		}
		return tx.Bucket(bucketMeta).Put(keyApplied, u64(index))
	})
	switch {
	case err == nil:
		s.m.applied.Add(1)
		if s.onKEK != nil && cmd != nil && (cmd.Type == ledger.TypeApprove || cmd.Type == ledger.TypePropose || cmd.Type == ledger.TypeAttest) {
			s.onKEK() // before advance: a waiter that sees index applied sees its KEK changes too
		}
		if mayRevoke(cmd) {
			if err := s.revoked.load(db); err != nil {
				return nil, s.setBroken(fmt.Errorf("apply %d: reload revocations: %w", index, err))
			}
		}
		s.logSize.Store(logSize)
		s.advance(index)
		return res, nil
	case errors.Is(err, errSkip):
		return nil, nil
	case errors.As(err, &reject):
		// Deterministic rejection: record only that the index was applied.
		if err := db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyApplied, u64(index))
		}); err != nil {
			return nil, s.setBroken(fmt.Errorf("apply %d: %w", index, err))
		}
		s.m.applied.Add(1)
		s.m.rejected.Add(1)
		s.advance(index)
		return nil, reject
	default:
		return nil, s.setBroken(fmt.Errorf("apply %d: %w", index, err))
	}
}

// applyCommand changes the state for cmd inside tx. It returns a
// *CommandError to reject cmd, any other error for a storage failure.
func applyCommand(tx *bbolt.Tx, index uint64, cmd *command) ([]byte, error) {
	var (
		r   result
		err error
	)
	switch cmd.Type {
	case cmdLedgerAppend:
		r, err = applyAppend(tx, cmd)
	case ledger.TypeGenesis:
		r, err = applyGenesis(tx, index, cmd)
	case ledger.TypeNodeAdd:
		r, err = applyNodeAdd(tx, cmd)
	case ledger.TypeNodeRemove:
		r, err = applyNodeRemove(tx, cmd)
	case ledger.TypeInit:
		r, err = applyInit(tx, index, cmd)
	case ledger.TypePropose:
		r, err = applyPropose(tx, cmd)
	case ledger.TypeApprove:
		r, err = applyApprove(tx, cmd)
	case ledger.TypeAttest:
		r, err = applyAttest(tx, cmd)
	default:
		return nil, cmdErr(cmd.Type, "unknown command type")
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// appendLogged appends entries with times not before the latest logged one
// (a new leader's clock may lag the old one's), and records the latest time.
// A *ParseError (an entry that breaks the rules) is a *CommandError.
func appendLogged(tx *bbolt.Tx, typ string, entries ...ledger.Entry) (first uint64, err error) {
	meta := tx.Bucket(bucketMeta)
	last := int64(getU64(meta, keyLastTime))
	for i := range entries {
		t := entries[i].Time.UnixNano()
		if t < last {
			entries[i].Time = time.Unix(0, last).UTC()
		} else {
			last = t
		}
	}
	first, err = ledger.AppendEntries(tx, entries...)
	var pe *ledger.ParseError
	if errors.As(err, &pe) {
		return 0, &CommandError{Type: typ, Err: err}
	}
	if err != nil {
		return 0, err
	}
	// The state machine's own entries are never drills.
	if err := indexAppended(tx, first, len(entries), nil); err != nil {
		return 0, err
	}
	return first, meta.Put(keyLastTime, u64(uint64(last)))
}

func genesisDone(tx *bbolt.Tx) bool { return tx.Bucket(bucketMeta).Get(keyGenesis) != nil }

func applyAppend(tx *bbolt.Tx, cmd *command) (result, error) {
	typ := cmd.Type
	if !genesisDone(tx) {
		return result{}, &CommandError{Type: typ, Err: ErrNotBootstrapped}
	}
	if cmd.Time != "" || cmd.ServedBy != "" || cmd.Actor != nil || cmd.Cluster != "" || cmd.AllowedRegions != nil || cmd.Node != nil || cmd.NodeID != "" ||
		cmd.Init != nil || cmd.Proposal != "" || cmd.ProposalID != "" || cmd.Officer != "" || cmd.Signature != nil {
		return result{}, cmdErr(typ, "unexpected fields")
	}
	if len(cmd.Entries) == 0 || len(cmd.Entries) > MaxAppendBatch {
		return result{}, cmdErr(typ, "%d entries, want 1..%d", len(cmd.Entries), MaxAppendBatch)
	}
	meta := tx.Bucket(bucketMeta)
	first, err := ledger.Size(tx)
	if err != nil {
		return result{}, err
	}
	last := int64(getU64(meta, keyLastTime))
	entries := make([][]byte, len(cmd.Entries))
	for i, raw := range cmd.Entries {
		if entries[i], last, err = stamp(raw, first+uint64(i), last); err != nil {
			return result{}, cmdErr(typ, "entry %d: %v", i, err)
		}
	}
	// Append checks every entry strictly (canonical form, index) before writing.
	if _, err := ledger.Append(tx, entries...); err != nil {
		var pe *ledger.ParseError
		if errors.As(err, &pe) || errors.Is(err, ledger.ErrIndexMismatch) {
			return result{}, &CommandError{Type: typ, Err: err}
		}
		return result{}, err
	}
	if err := meta.Put(keyLastTime, u64(uint64(last))); err != nil {
		return result{}, err
	}
	if err := indexAppended(tx, first, len(entries), func(i int) []byte { return entries[i] }); err != nil {
		return result{}, err
	}
	for i, raw := range entries {
		if err := recordCustody(tx, first+uint64(i), raw); err != nil {
			return result{}, err
		}
	}
	return result{First: first, Count: uint64(len(entries)), Outcome: string(ledger.OutcomeOK)}, nil
}

// entryHead is how every proposed entry starts: canonical form with index 0,
// then the 30-byte time (timeFormat) and its closing quote.
const entryHead = `{"index":0,"time":"`

// stamp returns raw (a proposed entry) numbered index, with its time raised
// to last if earlier, and the entry's time. It rewrites bytes without parsing
// the entry: ledger.Append checks the result strictly.
func stamp(raw []byte, index uint64, last int64) ([]byte, int64, error) {
	end := len(entryHead) + len(timeFormat)
	if !bytes.HasPrefix(raw, []byte(entryHead)) || len(raw) <= end || raw[end] != '"' {
		return nil, 0, errors.New(`does not start with {"index":0,"time":"…"`)
	}
	// The type comes right after the time in canonical form: entries of the
	// state machine's own types are never accepted from an append, so not
	// even a leader can forge them.
	if rest, ok := bytes.CutPrefix(raw[end+1:], []byte(`,"type":"`)); ok {
		if j := bytes.IndexByte(rest, '"'); j >= 0 && slices.Contains(reservedTypes, string(rest[:j])) {
			return nil, 0, fmt.Errorf("type %q is reserved for the state machine", rest[:j])
		}
	}
	ts := raw[len(entryHead):end]
	t, err := parseTime(string(ts))
	if err != nil {
		return nil, 0, err
	}
	if ns := t.UnixNano(); ns < last {
		ts = []byte(formatTime(time.Unix(0, last)))
	} else {
		last = ns
	}
	out := make([]byte, 0, len(raw)+20)
	out = append(out, `{"index":`...)
	out = strconv.AppendUint(out, index, 10)
	out = append(out, `,"time":"`...)
	out = append(out, ts...)
	out = append(out, raw[end:]...)
	return out, last, nil
}

// drillPrefix is what follows the time of a backup.drill entry in canonical
// form. The state machine keeps the newest drill of each dataset (details
// "dataset"), whatever its outcome.
var drillPrefix = []byte(`","type":"` + ledger.TypeDrill + `"`)

// isDrill reports whether raw, a canonical entry, has type backup.drill,
// without parsing it: the type comes right after the index and time.
func isDrill(raw []byte) bool { return hasType(raw, drillPrefix) }

// indexDrills brings the drills bucket up to the log's size: for every
// backup.drill entry after meta "drills_indexed", in log order, it records
// the entry's index under its dataset. It depends on the log alone, so every
// node has the same index at the same raft index, however it got there
// (applied, restored from a snapshot, or indexed at open after an upgrade).
// It returns the number of entries it read.
func indexDrills(tx *bbolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	size, err := ledger.Size(tx)
	if err != nil {
		return 0, err
	}
	from := getU64(meta, keyDrills)
	if from == size {
		return 0, nil
	}
	if from > size { // cannot happen; rebuild rather than trust it
		if err := tx.DeleteBucket(bucketDrills); err != nil {
			return 0, err
		}
		if _, err := tx.CreateBucket(bucketDrills); err != nil {
			return 0, err
		}
		from = 0
	}
	drills, n := tx.Bucket(bucketDrills), 0
	for start := from; start < size; {
		page, err := ledger.ReadEntries(tx, start, 1024)
		if err != nil {
			return n, err
		}
		for i, raw := range page {
			if err := recordDrill(drills, start+uint64(i), raw); err != nil {
				return n, err
			}
		}
		n += len(page)
		start += uint64(len(page))
	}
	return n, meta.Put(keyDrills, u64(size))
}

// indexAppended keeps the drills index up to date as n entries are
// appended from index first: raw(i) is entry i's canonical bytes, or raw is
// nil when none of them can be a drill. Every append goes through here, so
// the index is behind only if it was when the database was opened, and
// then indexDrills catches up from the log.
func indexAppended(tx *bbolt.Tx, first uint64, n int, raw func(i int) []byte) error {
	meta := tx.Bucket(bucketMeta)
	if getU64(meta, keyDrills) != first {
		_, err := indexDrills(tx)
		return err
	}
	if raw != nil {
		drills := tx.Bucket(bucketDrills)
		for i := range n {
			if err := recordDrill(drills, first+uint64(i), raw(i)); err != nil {
				return err
			}
		}
	}
	return meta.Put(keyDrills, u64(first+uint64(n)))
}

// recordDrill records raw, the log's entry index, if it is a drill with a dataset.
func recordDrill(drills *bbolt.Bucket, index uint64, raw []byte) error {
	if !isDrill(raw) {
		return nil
	}
	e, err := ledger.ParseEntry(raw)
	if err != nil {
		return fmt.Errorf("keysvc: log entry %d: %w", index, err)
	}
	if ds := e.Details["dataset"]; e.Type == ledger.TypeDrill && ds != "" && e.Index == index {
		return drills.Put([]byte(ds), u64(index))
	}
	return nil
}

// Drill is the newest backup.drill entry logged for a dataset.
type Drill struct {
	Dataset  string
	LogIndex uint64
	Entry    []byte // canonical bytes
}

// Drills returns the newest drill of every dataset, sorted by dataset, or
// of dataset alone (none if it has no drill). Leader only (else
// *NotLeaderError naming the leader), after every committed entry is
// applied: a drill just acknowledged is in the answer.
func (n *Node) Drills(ctx context.Context, dataset string) ([]Drill, error) {
	n.cpMu.Lock()
	err := n.leaderApplied(ctx)
	n.cpMu.Unlock()
	if err != nil {
		return nil, err
	}
	out := []Drill{}
	err = n.state.view(func(tx *bbolt.Tx) error {
		add := func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("keysvc: drill record %q: %w", k, ledger.ErrCorrupt)
			}
			i := binary.BigEndian.Uint64(v)
			raw, err := ledger.ReadEntry(tx, i)
			if err != nil {
				return err
			}
			out = append(out, Drill{Dataset: string(k), LogIndex: i, Entry: raw})
			return nil
		}
		b := tx.Bucket(bucketDrills)
		if dataset == "" {
			return b.ForEach(add)
		}
		if v := b.Get([]byte(dataset)); v != nil {
			return add([]byte(dataset), v)
		}
		return nil
	})
	return out, err
}

// opContextIn is opContext for a command that needs the cluster
// bootstrapped (genesis logged) or, with officers, initialised.
func opContextIn(tx *bbolt.Tx, cmd *command, officers bool) (time.Time, ledger.Actor, error) {
	switch {
	case officers && !initialized(tx):
		return time.Time{}, ledger.Actor{}, &CommandError{Type: cmd.Type, Err: ErrNotInitialized}
	case !officers && !genesisDone(tx):
		return time.Time{}, ledger.Actor{}, &CommandError{Type: cmd.Type, Err: ErrNotBootstrapped}
	}
	return opContext(cmd)
}

// opContext is what every membership command carries: time and actor.
func opContext(cmd *command) (time.Time, ledger.Actor, error) {
	t, err := parseTime(cmd.Time)
	if err != nil {
		return time.Time{}, ledger.Actor{}, cmdErr(cmd.Type, "%v", err)
	}
	a := cmd.Actor.actor()
	if a.Identity == "" {
		return time.Time{}, ledger.Actor{}, cmdErr(cmd.Type, "actor identity is required")
	}
	return t, a, nil
}

func nodeDetails(info NodeInfo) map[string]string {
	d := map[string]string{"node.id": info.ID, "node.region": info.Region}
	if info.RaftAddr != "" {
		d["node.raft_addr"] = info.RaftAddr
	}
	if info.APIAddr != "" {
		d["node.api_addr"] = info.APIAddr
	}
	if info.Keys != "" {
		sum := sha256.Sum256([]byte(info.Keys))
		d["node.keys_sha256"] = hex.EncodeToString(sum[:])
	}
	return d
}

func applyGenesis(tx *bbolt.Tx, index uint64, cmd *command) (result, error) {
	typ := cmd.Type
	if genesisDone(tx) {
		return result{}, &CommandError{Type: typ, Err: ErrAlreadyBootstrapped}
	}
	t, actor, err := opContext(cmd)
	if err != nil {
		return result{}, err
	}
	if cmd.Node == nil {
		return result{}, cmdErr(typ, "node is required")
	}
	info := *cmd.Node
	if err := info.validate(cmd.Cluster); err != nil {
		return result{}, &CommandError{Type: typ, Err: err}
	}
	regions := cmd.AllowedRegions
	if len(regions) == 0 || !slices.IsSorted(regions) || len(slices.Compact(slices.Clone(regions))) != len(regions) {
		return result{}, cmdErr(typ, "allowed regions must be non-empty, sorted and distinct")
	}
	for _, r := range regions {
		if !identity.IsEUEEA(r) {
			return result{}, cmdErr(typ, "allowed region %q is not an EU/EEA code", r)
		}
	}
	if !slices.Contains(regions, info.Region) {
		return result{}, &CommandError{Type: typ, Err: fmt.Errorf("%w: genesis node region %s", ErrRegionNotAllowed, info.Region)}
	}
	if n, err := ledger.Size(tx); err != nil {
		return result{}, err
	} else if n != 0 {
		return result{}, cmdErr(typ, "log already holds %d entries", n)
	}
	meta := tx.Bucket(bucketMeta)
	regionsJSON, err := json.Marshal(regions)
	if err != nil {
		return result{}, err
	}
	for _, kv := range [][2][]byte{{keyCluster, []byte(cmd.Cluster)}, {keyRegions, regionsJSON}, {keyGenesis, u64(index)}} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return result{}, err
		}
	}
	first, err := appendLogged(tx, typ,
		ledger.Entry{Time: t, Type: ledger.TypeGenesis, Actor: actor, Node: cmd.ServedBy, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"cluster": cmd.Cluster, "allowed_regions": strings.Join(regions, ","), "origin": ledger.Origin(cmd.Cluster)}},
		ledger.Entry{Time: t, Type: ledger.TypeNodeAdd, Actor: actor, Node: cmd.ServedBy, Outcome: ledger.OutcomeOK, Details: nodeDetails(info)})
	if err != nil {
		return result{}, err
	}
	if err := putNode(tx, nodeRecord{NodeInfo: info, Added: first + 1}); err != nil {
		return result{}, err
	}
	return result{First: first, Count: 2, Outcome: string(ledger.OutcomeOK)}, nil
}

// logOne appends one membership entry and returns its result.
func logOne(tx *bbolt.Tx, cmd *command, t time.Time, actor ledger.Actor, outcome ledger.Outcome, code, reason string, details map[string]string) (result, error) {
	first, err := appendLogged(tx, cmd.Type, ledger.Entry{
		Time: t, Type: cmd.Type, Actor: actor, Node: cmd.ServedBy, Outcome: outcome, Reason: reason, Details: details,
	})
	if err != nil {
		return result{}, err
	}
	return result{First: first, Count: 1, Outcome: string(outcome), Code: code, Reason: reason}, nil
}

func applyNodeAdd(tx *bbolt.Tx, cmd *command) (result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, false)
	if err != nil {
		return result{}, err
	}
	if cmd.Node == nil {
		return result{}, cmdErr(typ, "node is required")
	}
	info := *cmd.Node
	meta := tx.Bucket(bucketMeta)
	cluster := string(meta.Get(keyCluster))
	deny := func(code, reason string) (result, error) {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, reason, nodeDetails(info))
	}
	if err := info.validate(cluster); err != nil {
		return deny(errcode.InvalidNode, err.Error())
	}
	regions, err := allowedRegions(meta)
	if err != nil {
		return result{}, err
	}
	if !slices.Contains(regions, info.Region) {
		return deny(errcode.RegionNotAllowed, fmt.Sprintf("region %s is not among the allowed regions %s", info.Region, strings.Join(regions, ",")))
	}
	old, found, err := getNode(tx, info.ID)
	if err != nil {
		return result{}, err
	}
	switch {
	case found && !old.Removed && old.NodeInfo == info:
		return logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "already registered", nodeDetails(info))
	case found && !old.Removed:
		return deny(errcode.NodeConflict, fmt.Sprintf("node %s is registered with other details", info.ID))
	case found && old.Keys != info.Keys:
		return deny(errcode.NodeConflict, fmt.Sprintf("node %s was registered with other keys", info.ID))
	}
	if initialized(tx) {
		return deny(errcode.CeremonyRequired, fmt.Sprintf("node %s is not registered: after initialisation officers add nodes by a node.add ceremony", info.ID))
	}
	if rv, revoked, err := identityRevoked(tx, "node", info.ID); err != nil {
		return result{}, err
	} else if revoked {
		return deny(errcode.IdentityRevoked, fmt.Sprintf("node identity %s was revoked by entry %d: choose another node id", info.ID, rv.Entry))
	}
	r, err := logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "", nodeDetails(info))
	if err != nil {
		return result{}, err
	}
	if err := bumpMembership(tx); err != nil {
		return result{}, err
	}
	return r, putNode(tx, nodeRecord{NodeInfo: info, Added: r.First})
}

func applyNodeRemove(tx *bbolt.Tx, cmd *command) (result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, false)
	if err != nil {
		return result{}, err
	}
	if !printable(cmd.NodeID) || len(cmd.NodeID) > 64 {
		return result{}, cmdErr(typ, "node id %q", cmd.NodeID)
	}
	details := map[string]string{"node.id": cmd.NodeID}
	rec, found, err := getNode(tx, cmd.NodeID)
	if err != nil {
		return result{}, err
	}
	switch {
	case !found:
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, errcode.UnknownNode, fmt.Sprintf("node %s is not registered", cmd.NodeID), details)
	case rec.Removed:
		return logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "already removed", details)
	}
	pid, code, reason, err := nodeRemovalAllowed(tx, rec)
	if err != nil {
		return result{}, err
	}
	if code != "" {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, reason, details)
	}
	active := 0
	if err := forNodes(tx, func(r nodeRecord) error {
		if !r.Removed {
			active++
		}
		return nil
	}); err != nil {
		return result{}, err
	}
	if active <= 1 {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, errcode.LastNode, fmt.Sprintf("node %s is the last member", cmd.NodeID), details)
	}
	size, err := ledger.Size(tx)
	if err != nil {
		return result{}, err
	}
	revoked, err := revokeRemoved(tx, "node", cmd.NodeID, size, cmd.Time, pid)
	if err != nil {
		return result{}, err
	}
	for k, v := range revoked {
		details[k] = v
	}
	if pid != "" {
		details["proposal.id"] = pid
	}
	r, err := logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "", details)
	if err != nil {
		return result{}, err
	}
	rec.Removed = true
	if err := bumpMembership(tx); err != nil {
		return result{}, err
	}
	return r, putNode(tx, rec)
}

// nodeRemovalAllowed decides whether a node.remove command may remove rec,
// a member: before initialisation the operator forms the cluster alone;
// after it, only an executed node.remove ceremony of this registration of
// the node (closed after the node was added, so a ceremony is consumed by
// the registration it removed) authorises it, and pid is that ceremony.
// A refusal is a code and reason.
func nodeRemovalAllowed(tx *bbolt.Tx, rec nodeRecord) (pid, code, reason string, err error) {
	if !initialized(tx) {
		return "", "", "", nil
	}
	c, found, err := executedNodeRemoval(tx, rec.ID, rec.Added)
	if err != nil || !found {
		return "", errcode.CeremonyRequired, fmt.Sprintf("node %s is a member: after initialisation officers remove nodes by a node.remove ceremony", rec.ID), err
	}
	return c.ID, "", "", nil
}

// Snapshot implements raft.StateMachine: a read transaction, streamed by
// WriteTo (bbolt's consistent copy of the whole file) and ended by Release.
func (s *stateDB) Snapshot() (raft.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.broken != nil {
		return nil, s.broken
	}
	if s.db == nil {
		return nil, ErrClosed
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("keysvc: snapshot: %w", err)
	}
	return &dbSnapshot{tx: tx}, nil
}

type dbSnapshot struct {
	once sync.Once
	tx   *bbolt.Tx
}

func (d *dbSnapshot) WriteTo(w io.Writer) (int64, error) { return d.tx.WriteTo(w) }
func (d *dbSnapshot) Release()                           { d.once.Do(func() { d.tx.Rollback() }) }

// stateHead is what Restore compares between the database and a snapshot.
type stateHead struct {
	applied uint64
	cluster string
	size    uint64
}

func readHead(tx *bbolt.Tx) (stateHead, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return stateHead{}, fmt.Errorf("no meta bucket")
	}
	size, err := ledger.Size(tx)
	if err != nil {
		return stateHead{}, err
	}
	return stateHead{applied: getU64(meta, keyApplied), cluster: string(meta.Get(keyCluster)), size: size}, nil
}

// Restore implements raft.StateMachine. The stream (a bbolt file written by
// Snapshot) goes to a temporary file beside state.db and is checked against
// the current database and the checkpoint this node signed (judgeSnapshot):
//
//   - if the current database already contains the snapshot's state — it
//     applied at least as far, for the same cluster, and its log extends the
//     snapshot's log (same root at the snapshot's size) — it is kept. This is
//     the restart case: raft restores its latest snapshot at start, and the
//     database on disk is usually newer; raft then replays the commands after
//     the snapshot, which Apply skips up to the database's applied index.
//   - if the snapshot is ahead and its log extends both the database's log
//     and the latest checkpoint this node signed (a lagging or new node
//     installing the leader's snapshot), it replaces state.db: rename over
//     it, sync the directory, reopen.
//   - anything else contradicts what this node applied or signed: it is
//     refused with an error wrapping ErrSnapshotRefused, counted in
//     Metrics.SnapshotsRefused, and state.db is left untouched.
//
// Committed state at a raft index is the same on every node, so keeping a
// database that is ahead is as correct as restoring and replaying, and does
// not move the node's visible state backwards.
func (s *stateDB) Restore(r io.Reader) error {
	tmp := s.path + ".restore"
	if err := writeStream(tmp, r); err != nil {
		return fmt.Errorf("keysvc: restore: %w", err)
	}
	defer os.Remove(tmp) // no-op once renamed
	snap, snapHead, snapRoot, err := inspectSnapshot(tmp)
	if err != nil {
		return fmt.Errorf("keysvc: restore: snapshot: %w", err)
	}
	defer snap.Close() // closed before the rename too: a reader's lock would block the reopen

	s.mu.Lock()
	defer s.mu.Unlock()
	s.signedMu.Lock()
	signed, hasSigned := s.signed, s.hasSigned
	s.signedMu.Unlock()
	var verdict snapVerdict
	err = snap.View(func(stx *bbolt.Tx) error {
		judge := func(cur *bbolt.Tx) (err error) {
			verdict, err = judgeSnapshot(cur, stx, snapHead, snapRoot, signed, hasSigned)
			return err
		}
		if s.db == nil {
			return judge(nil)
		}
		err := s.db.View(judge)
		if err != nil && !errors.Is(err, ErrSnapshotRefused) {
			// An unreadable database cannot be compared; the signed
			// checkpoint still is.
			s.log.Warn("keysvc: cannot compare state database with snapshot; checking the signed checkpoint only", "err", err)
			return judge(nil)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrSnapshotRefused) {
			s.m.snapshotsRefused.Add(1)
			s.log.Error("keysvc: snapshot refused; state database unchanged", "err", err,
				"snapshot_applied", snapHead.applied, "snapshot_log_size", snapHead.size)
		}
		return fmt.Errorf("keysvc: restore: %w", err)
	}
	if verdict == snapKeep {
		s.log.Info("keysvc: state database is at or past the snapshot; kept",
			"snapshot_applied", snapHead.applied, "snapshot_log_size", snapHead.size)
		return nil
	}
	if err := snap.Close(); err != nil {
		return fmt.Errorf("keysvc: restore: snapshot: %w", err)
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Warn("keysvc: restore: close state database", "err", err)
		}
		s.db = nil
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return s.restoreFailed(err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(s.path)); err != nil {
		return s.restoreFailed(err)
	}
	db, err := s.openDB(s.path)
	if err != nil {
		return s.restoreFailed(err)
	}
	if err := s.revoked.load(db); err != nil {
		db.Close()
		return s.restoreFailed(err)
	}
	s.db = db
	s.broken = nil
	s.setAppliedLocked()
	s.m.restores.Add(1)
	s.log.Info("keysvc: state restored from snapshot", "applied", snapHead.applied, "log_size", snapHead.size)
	if s.onKEK != nil {
		s.onKEK()
	}
	return nil
}

// advance records that index was applied and wakes the waiters.
func (s *stateDB) advance(index uint64) {
	s.applied.Store(index)
	s.appliedMu.Lock()
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	s.appliedMu.Unlock()
}

// setApplied reads the applied index from the database into s.applied.
func (s *stateDB) setApplied() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.setAppliedLocked()
}

func (s *stateDB) setAppliedLocked() {
	if s.db == nil {
		return
	}
	_ = s.db.View(func(tx *bbolt.Tx) error {
		s.applied.Store(getU64(tx.Bucket(bucketMeta), keyApplied))
		if sz, err := ledger.Size(tx); err == nil {
			s.logSize.Store(sz)
		}
		return nil
	})
}

// appliedWait returns the applied index and a channel closed when it next advances.
func (s *stateDB) appliedWait() (uint64, <-chan struct{}) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	return s.applied.Load(), s.appliedCh
}

// restoreFailed marks the state broken after a failed swap; called with mu held.
func (s *stateDB) restoreFailed(err error) error {
	s.broken = fmt.Errorf("%w: restore: %w", ErrStateBroken, err)
	s.log.Error("keysvc: restore failed", "err", err)
	return s.broken
}

func writeStream(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// inspectSnapshot opens a snapshot file read-only and returns it with its
// head and log root, checking it is a state database. The caller closes it.
func inspectSnapshot(path string) (*bbolt.DB, stateHead, tlog.Hash, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, stateHead{}, tlog.Hash{}, err
	}
	var (
		h    stateHead
		root tlog.Hash
	)
	err = db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketNodes) == nil {
			return errors.New("no nodes bucket")
		}
		if h, err = readHead(tx); err != nil {
			return err
		}
		root, err = ledger.Root(tx, h.size)
		return err
	})
	if err != nil {
		db.Close()
		return nil, stateHead{}, tlog.Hash{}, err
	}
	return db, h, root, nil
}

// Reads shared by Node.

func allowedRegions(meta *bbolt.Bucket) ([]string, error) {
	v := meta.Get(keyRegions)
	if v == nil {
		return nil, nil
	}
	var r []string
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("keysvc: allowed regions record: %w", err)
	}
	return r, nil
}

// getRecord reads the JSON record key of bucket; ok is false when there is none.
func getRecord[T any](tx *bbolt.Tx, bucket []byte, key, what string) (rec T, ok bool, err error) {
	v := tx.Bucket(bucket).Get([]byte(key))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("keysvc: %s record %q: %w", what, key, err)
	}
	return rec, true, nil
}

// forRecords calls fn for every JSON record of bucket, in key order.
func forRecords[T any](tx *bbolt.Tx, bucket []byte, what string, fn func(T) error) error {
	return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("keysvc: %s record %q: %w", what, k, err)
		}
		return fn(rec)
	})
}

func getNode(tx *bbolt.Tx, id string) (nodeRecord, bool, error) {
	return getRecord[nodeRecord](tx, bucketNodes, id, "node")
}

func putNode(tx *bbolt.Tx, r nodeRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketNodes).Put([]byte(r.ID), v)
}

// forNodes calls fn for every node record, in id order.
func forNodes(tx *bbolt.Tx, fn func(nodeRecord) error) error {
	return forRecords(tx, bucketNodes, "node", fn)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bbolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
