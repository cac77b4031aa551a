// The state machine: raft commands applied to a bbolt transaction
// holding the cluster meta, the node table and the key-op log.

package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/ledger/ledgerdb"
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
//	nodes   node id -> JSON NodeRecord
//	officers    officer id -> JSON Officer (bundle, fingerprint, active)
//	ceremonies  proposal id -> JSON Ceremony (canonical proposal bytes,
//	            accepted approvals, status, refusal code, log indexes)
//	keks    kek id -> JSON KEK (policy, legal hold, versions with public
//	        keys, commitments, sealed shares and the nodes' statements)
//	revocations  "fingerprint:sha256:<hex>" or "identity:<role>/<name>" ->
//	        JSON Revocation; never deleted
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

// applyCommand changes the state for cmd inside tx. It returns a
// *CommandError to reject cmd, any other error for a storage failure.
func applyCommand(tx *bbolt.Tx, index uint64, cmd *Command) ([]byte, error) {
	var (
		r   Result
		err error
	)
	switch cmd.Type {
	case CmdLedgerAppend:
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
	first, err = ledgerdb.AppendEntries(tx, entries...)
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

// GenesisDone reports whether the cluster's genesis is applied.
func GenesisDone(tx *bbolt.Tx) bool { return tx.Bucket(bucketMeta).Get(keyGenesis) != nil }

func applyAppend(tx *bbolt.Tx, cmd *Command) (Result, error) {
	typ := cmd.Type
	if !GenesisDone(tx) {
		return Result{}, &CommandError{Type: typ, Err: ErrNotBootstrapped}
	}
	if cmd.Time != "" || cmd.ServedBy != "" || cmd.Actor != nil || cmd.Cluster != "" || cmd.AllowedRegions != nil || cmd.Node != nil || cmd.NodeID != "" ||
		cmd.Init != nil || cmd.Proposal != "" || cmd.ProposalID != "" || cmd.Officer != "" || cmd.Signature != nil {
		return Result{}, cmdErr(typ, "unexpected fields")
	}
	if len(cmd.Entries) == 0 || len(cmd.Entries) > MaxAppendBatch {
		return Result{}, cmdErr(typ, "%d entries, want 1..%d", len(cmd.Entries), MaxAppendBatch)
	}
	meta := tx.Bucket(bucketMeta)
	first, err := ledgerdb.Size(tx)
	if err != nil {
		return Result{}, err
	}
	last := int64(getU64(meta, keyLastTime))
	entries := make([][]byte, len(cmd.Entries))
	for i, raw := range cmd.Entries {
		if entries[i], last, err = stamp(raw, first+uint64(i), last); err != nil {
			return Result{}, cmdErr(typ, "entry %d: %v", i, err)
		}
	}
	// Append checks every entry strictly (canonical form, index) before writing.
	if _, err := ledgerdb.Append(tx, entries...); err != nil {
		var pe *ledger.ParseError
		if errors.As(err, &pe) || errors.Is(err, ledger.ErrIndexMismatch) {
			return Result{}, &CommandError{Type: typ, Err: err}
		}
		return Result{}, err
	}
	if err := meta.Put(keyLastTime, u64(uint64(last))); err != nil {
		return Result{}, err
	}
	if err := indexAppended(tx, first, len(entries), func(i int) []byte { return entries[i] }); err != nil {
		return Result{}, err
	}
	for i, raw := range entries {
		if err := recordCustody(tx, first+uint64(i), raw); err != nil {
			return Result{}, err
		}
	}
	return Result{First: first, Count: uint64(len(entries)), Outcome: string(ledger.OutcomeOK)}, nil
}

// entryHead is how every proposed entry starts: canonical form with index 0,
// then the 30-byte time (timeFormat) and its closing quote.
const entryHead = `{"index":0,"time":"`

// stamp returns raw (a proposed entry) numbered index, with its time raised
// to last if earlier, and the entry's time. It rewrites bytes without parsing
// the entry: ledgerdb.Append checks the result strictly.
func stamp(raw []byte, index uint64, last int64) ([]byte, int64, error) {
	end := len(entryHead) + len(TimeFormat)
	if !bytes.HasPrefix(raw, []byte(entryHead)) || len(raw) <= end || raw[end] != '"' {
		return nil, 0, errors.New(`does not start with {"index":0,"time":"…"`)
	}
	// The type comes right after the time in canonical form: entries of the
	// state machine's own types are never accepted from an append, so not
	// even a leader can forge them.
	if rest, ok := bytes.CutPrefix(raw[end+1:], []byte(`,"type":"`)); ok {
		if j := bytes.IndexByte(rest, '"'); j >= 0 && Reserved(string(rest[:j])) {
			return nil, 0, fmt.Errorf("type %q is reserved for the state machine", rest[:j])
		}
	}
	ts := raw[len(entryHead):end]
	t, err := ParseTime(string(ts))
	if err != nil {
		return nil, 0, err
	}
	if ns := t.UnixNano(); ns < last {
		ts = []byte(FormatTime(time.Unix(0, last)))
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
	size, err := ledgerdb.Size(tx)
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
		page, err := ledgerdb.ReadEntries(tx, start, 1024)
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

// opContextIn is opContext for a command that needs the cluster
// bootstrapped (genesis logged) or, with officers, initialised.
func opContextIn(tx *bbolt.Tx, cmd *Command, officers bool) (time.Time, ledger.Actor, error) {
	switch {
	case officers && !Initialized(tx):
		return time.Time{}, ledger.Actor{}, &CommandError{Type: cmd.Type, Err: ErrNotInitialized}
	case !officers && !GenesisDone(tx):
		return time.Time{}, ledger.Actor{}, &CommandError{Type: cmd.Type, Err: ErrNotBootstrapped}
	}
	return opContext(cmd)
}

// opContext is what every membership command carries: time and actor.
func opContext(cmd *Command) (time.Time, ledger.Actor, error) {
	t, err := ParseTime(cmd.Time)
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

func applyGenesis(tx *bbolt.Tx, index uint64, cmd *Command) (Result, error) {
	typ := cmd.Type
	if GenesisDone(tx) {
		return Result{}, &CommandError{Type: typ, Err: ErrAlreadyBootstrapped}
	}
	t, actor, err := opContext(cmd)
	if err != nil {
		return Result{}, err
	}
	if cmd.Node == nil {
		return Result{}, cmdErr(typ, "node is required")
	}
	info := *cmd.Node
	if err := info.validate(cmd.Cluster); err != nil {
		return Result{}, &CommandError{Type: typ, Err: err}
	}
	regions := cmd.AllowedRegions
	if len(regions) == 0 || !slices.IsSorted(regions) || len(slices.Compact(slices.Clone(regions))) != len(regions) {
		return Result{}, cmdErr(typ, "allowed regions must be non-empty, sorted and distinct")
	}
	for _, r := range regions {
		if !identity.IsEUEEA(r) {
			return Result{}, cmdErr(typ, "allowed region %q is not an EU/EEA code", r)
		}
	}
	if !slices.Contains(regions, info.Region) {
		return Result{}, &CommandError{Type: typ, Err: fmt.Errorf("%w: genesis node region %s", ErrRegionNotAllowed, info.Region)}
	}
	if n, err := ledgerdb.Size(tx); err != nil {
		return Result{}, err
	} else if n != 0 {
		return Result{}, cmdErr(typ, "log already holds %d entries", n)
	}
	meta := tx.Bucket(bucketMeta)
	regionsJSON, err := json.Marshal(regions)
	if err != nil {
		return Result{}, err
	}
	for _, kv := range [][2][]byte{{keyCluster, []byte(cmd.Cluster)}, {keyRegions, regionsJSON}, {keyGenesis, u64(index)}} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return Result{}, err
		}
	}
	first, err := appendLogged(tx, typ,
		ledger.Entry{Time: t, Type: ledger.TypeGenesis, Actor: actor, Node: cmd.ServedBy, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"cluster": cmd.Cluster, "allowed_regions": strings.Join(regions, ","), "origin": ledger.Origin(cmd.Cluster)}},
		ledger.Entry{Time: t, Type: ledger.TypeNodeAdd, Actor: actor, Node: cmd.ServedBy, Outcome: ledger.OutcomeOK, Details: nodeDetails(info)})
	if err != nil {
		return Result{}, err
	}
	if err := putNode(tx, NodeRecord{NodeInfo: info, Added: first + 1}); err != nil {
		return Result{}, err
	}
	return Result{First: first, Count: 2, Outcome: string(ledger.OutcomeOK)}, nil
}

// logOne appends one membership entry and returns its result.
func logOne(tx *bbolt.Tx, cmd *Command, t time.Time, actor ledger.Actor, outcome ledger.Outcome, code, reason string, details map[string]string) (Result, error) {
	first, err := appendLogged(tx, cmd.Type, ledger.Entry{
		Time: t, Type: cmd.Type, Actor: actor, Node: cmd.ServedBy, Outcome: outcome, Reason: reason, Details: details,
	})
	if err != nil {
		return Result{}, err
	}
	return Result{First: first, Count: 1, Outcome: string(outcome), Code: code, Reason: reason}, nil
}

func applyNodeAdd(tx *bbolt.Tx, cmd *Command) (Result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, false)
	if err != nil {
		return Result{}, err
	}
	if cmd.Node == nil {
		return Result{}, cmdErr(typ, "node is required")
	}
	info := *cmd.Node
	meta := tx.Bucket(bucketMeta)
	cluster := string(meta.Get(keyCluster))
	deny := func(code, reason string) (Result, error) {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, reason, nodeDetails(info))
	}
	if err := info.validate(cluster); err != nil {
		return deny(errcode.InvalidNode, err.Error())
	}
	regions, err := allowedRegions(meta)
	if err != nil {
		return Result{}, err
	}
	if !slices.Contains(regions, info.Region) {
		return deny(errcode.RegionNotAllowed, fmt.Sprintf("region %s is not among the allowed regions %s", info.Region, strings.Join(regions, ",")))
	}
	old, found, err := GetNode(tx, info.ID)
	if err != nil {
		return Result{}, err
	}
	switch {
	case found && !old.Removed && old.NodeInfo == info:
		return logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "already registered", nodeDetails(info))
	case found && !old.Removed:
		return deny(errcode.NodeConflict, fmt.Sprintf("node %s is registered with other details", info.ID))
	case found && old.Keys != info.Keys:
		return deny(errcode.NodeConflict, fmt.Sprintf("node %s was registered with other keys", info.ID))
	}
	if Initialized(tx) {
		return deny(errcode.CeremonyRequired, fmt.Sprintf("node %s is not registered: after initialisation officers add nodes by a node.add ceremony", info.ID))
	}
	if rv, revoked, err := identityRevoked(tx, "node", info.ID); err != nil {
		return Result{}, err
	} else if revoked {
		return deny(errcode.IdentityRevoked, fmt.Sprintf("node identity %s was revoked by entry %d: choose another node id", info.ID, rv.Entry))
	}
	r, err := logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "", nodeDetails(info))
	if err != nil {
		return Result{}, err
	}
	if err := bumpMembership(tx); err != nil {
		return Result{}, err
	}
	return r, putNode(tx, NodeRecord{NodeInfo: info, Added: r.First})
}

func applyNodeRemove(tx *bbolt.Tx, cmd *Command) (Result, error) {
	typ := cmd.Type
	t, actor, err := opContextIn(tx, cmd, false)
	if err != nil {
		return Result{}, err
	}
	if !printable(cmd.NodeID) || len(cmd.NodeID) > 64 {
		return Result{}, cmdErr(typ, "node id %q", cmd.NodeID)
	}
	details := map[string]string{"node.id": cmd.NodeID}
	rec, found, err := GetNode(tx, cmd.NodeID)
	if err != nil {
		return Result{}, err
	}
	switch {
	case !found:
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, errcode.UnknownNode, fmt.Sprintf("node %s is not registered", cmd.NodeID), details)
	case rec.Removed:
		return logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "already removed", details)
	}
	pid, code, reason, err := nodeRemovalAllowed(tx, rec)
	if err != nil {
		return Result{}, err
	}
	if code != "" {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, code, reason, details)
	}
	active := 0
	if err := ForNodes(tx, func(r NodeRecord) error {
		if !r.Removed {
			active++
		}
		return nil
	}); err != nil {
		return Result{}, err
	}
	if active <= 1 {
		return logOne(tx, cmd, t, actor, ledger.OutcomeDenied, errcode.LastNode, fmt.Sprintf("node %s is the last member", cmd.NodeID), details)
	}
	size, err := ledgerdb.Size(tx)
	if err != nil {
		return Result{}, err
	}
	revoked, err := revokeRemoved(tx, "node", cmd.NodeID, size, cmd.Time, pid)
	if err != nil {
		return Result{}, err
	}
	for k, v := range revoked {
		details[k] = v
	}
	if pid != "" {
		details["proposal.id"] = pid
	}
	r, err := logOne(tx, cmd, t, actor, ledger.OutcomeOK, "", "", details)
	if err != nil {
		return Result{}, err
	}
	rec.Removed = true
	if err := bumpMembership(tx); err != nil {
		return Result{}, err
	}
	return r, putNode(tx, rec)
}

// nodeRemovalAllowed decides whether a node.remove command may remove rec,
// a member: before initialisation the operator forms the cluster alone;
// after it, only an executed node.remove ceremony of this registration of
// the node (closed after the node was added, so a ceremony is consumed by
// the registration it removed) authorises it, and pid is that ceremony.
// A refusal is a code and reason.
func nodeRemovalAllowed(tx *bbolt.Tx, rec NodeRecord) (pid, code, reason string, err error) {
	if !Initialized(tx) {
		return "", "", "", nil
	}
	c, found, err := executedNodeRemoval(tx, rec.ID, rec.Added)
	if err != nil || !found {
		return "", errcode.CeremonyRequired, fmt.Sprintf("node %s is a member: after initialisation officers remove nodes by a node.remove ceremony", rec.ID), err
	}
	return c.ID, "", "", nil
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

// GetNode reads node id's record; found is false when there is none.
func GetNode(tx *bbolt.Tx, id string) (NodeRecord, bool, error) {
	return getRecord[NodeRecord](tx, bucketNodes, id, "node")
}

func putNode(tx *bbolt.Tx, r NodeRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketNodes).Put([]byte(r.ID), v)
}

// ForNodes calls fn for every node record, in id order.
func ForNodes(tx *bbolt.Tx, fn func(NodeRecord) error) error {
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
