package report

// The custody report's content: what it gathers from a pack's records
// (officers, ceremony transcripts, destruction certificates and the
// entries, streamed), independent of how it is rendered (render.go).

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// maxListed bounds the single denials and transfers a report lists one by
// one (the tables of counts cover them all).
const maxListed = 200

// Report is everything a custody report says.
type Report struct {
	Pack       string // the pack file, as named on the command line
	PackSHA256 string // hex SHA-256 of the pack file
	Cluster    string
	Origin     string
	From, To   uint64 // the pack's entries are [From, To)
	Created    time.Time
	Generated  time.Time

	CheckpointSize   uint64
	CheckpointRoot   string // base64, as in the checkpoint
	CheckpointSigner string // key name of the node that signed it, when verified

	Verified     bool
	Verification string // what was verified against what, or why not

	Entries             uint64
	FirstTime, LastTime time.Time
	ByType              []nameCount

	Officers    []officerRow
	KEKs        []*kekReport
	Unwraps     []*unwrapRow
	UnwrapTotal int
	Withdrawn   int // unwraps answered then withdrawn (a KEK change won the race)
	KeyOps      []*keyOpRow

	Denials      []*denialRow
	DenialTotal  int
	DenialList   []denialEntry // the first maxListed
	Ceremonies   []*ceremonyRow
	Transfers    []transferRow
	TransferMore int // transfers beyond maxListed
	Destroyed    []*destroyedRow

	// Restore drills: per dataset named by the pack's backup entries, its
	// drills; and the drills that missed (the first maxListed).
	Drills       []*drillDataset
	DrillTotal   int
	DrillMisses  int
	Undrilled    int // datasets with no drill in the pack
	MissedDrills []*drillRow

	// Activations and the share releases that answered them (the first
	// maxListed activations), and the activations and releases that are
	// flagged: findings, and releases of the earlier format.
	Activations     []*activationRow
	ActivationTotal int
	ReleaseFlags    []releaseFlag // the first maxListed
	FlagTotal       int

	Chart barChart
}

// activationRow is one kek.activate and the peers that released a share for it.
type activationRow struct {
	Index     uint64
	Time      time.Time
	Client    string
	KEK       string
	Node      string   // the serving node
	Releasers []string // "node (entry N)"
	Unbound   bool     // the earlier format: logged by the node after the releases, no signed request
}

// releaseFlag is an activation or release the report flags.
type releaseFlag struct {
	Index      uint64
	Time       time.Time
	Type, Node string
	KEK        string
	To, For    string
	Code, Why  string
}

type nameCount struct {
	Name  string
	Count int
}

type officerRow struct {
	ID, Fingerprint string
}

// kekReport is one KEK's lifecycle as the pack shows it.
type kekReport struct {
	ID        string
	Versions  []*versionRow
	Events    []lifeEvent
	LegalHold string // the hold's reason at the end of the pack, "" if none
	Unwraps   int
}

type versionRow struct {
	Version   uint32
	State     string // active, disabled, destroyed; "" if the pack does not show it
	Created   uint64 // entry that dealt it; 0 if before the pack
	Threshold string
	Holders   string
	Escrow    string
	Destroyed uint64
	Recovered []uint64
}

// lifeEvent is one executed (or refused) KEK ceremony, or a node's
// destruction attestation.
type lifeEvent struct {
	Index     uint64
	Time      time.Time
	What      string // e.g. "kek.rotate", "kek.destroyed (attestation)"
	Version   string
	Detail    string
	Approvers string
	Proposal  string
	Refused   bool
}

type unwrapKey struct{ Identity, Region, KEK string }

type unwrapRow struct {
	unwrapKey
	Count, Withdrawn int
	First, Last      time.Time
}

type keyOpRow struct {
	KEK                                     string
	Wrap, Unwrap, DataKey, Rewrap, Activate int
	Release, Denied                         int
}

type denialKey struct{ Type, Code string }

type denialRow struct {
	denialKey
	Count int
	Last  uint64
}

type denialEntry struct {
	Index                 uint64
	Time                  time.Time
	Type, Actor, KEK, Why string
}

type ceremonyRow struct {
	ID, Operation, Proposer string
	Description             string
	Status                  string // executed, refused, pending (at the end of the pack)
	Why                     string // refusal code and reason
	Approvers               []string
	Proposed, Closed        uint64
	ProposedAt, ClosedAt    time.Time
}

type transferRow struct {
	Index    uint64
	Time     time.Time
	Actor    string
	Outcome  string
	Dataset  string
	Checksum string
	Where    string
	Why      string
	Policy   string
	Other    string
}

// drillDataset is one dataset's restore drills in the pack.
type drillDataset struct {
	Dataset string
	Drills  int
	Misses  int
	Last    *drillRow // the newest drill; nil if the pack has none
}

// drillRow is one backup.drill entry: a restore drill as the agent that
// ran it attested it.
type drillRow struct {
	Index   uint64
	Time    time.Time
	Dataset string
	Archive string
	Agent   string
	Target  string // where the archive was read from; "" before agents recorded it
	Result  string // the agent's: "ok", "failed: …", or the RTO it missed
	Restore drillFigure
	RTO     drillFigure // the RTO in force; absent before agents recorded it
}

// drillFigure is a number of seconds a drill entry records, if it does.
type drillFigure struct {
	Raw     string  // the detail as recorded ("" if absent)
	Seconds float64 // valid if OK
	OK      bool
}

// missing says why a figure that is not OK is not there.
func (f drillFigure) missing() string {
	if f.Raw == "" {
		return "not recorded"
	}
	return "unreadable"
}

func parseDrillFigure(raw string) drillFigure {
	f := drillFigure{Raw: raw}
	if s, err := strconv.ParseFloat(raw, 64); err == nil && s >= 0 && !math.IsInf(s, 0) {
		f.Seconds, f.OK = s, true
	}
	return f
}

// Over reports whether the restore took longer than the RTO, both recorded.
func (d *drillRow) Over() bool {
	return d.Restore.OK && d.RTO.OK && d.RTO.Seconds > 0 && d.Restore.Seconds > d.RTO.Seconds
}

// Missed reports whether the drill counts as a miss: its result is not ok
// (failed, or the agent found it over the RTO), or its restore time is
// over the RTO it records.
func (d *drillRow) Missed() bool { return d.Result != "ok" || d.Over() }

// Verdict says in a few words how the drill went, against the RTO.
func (d *drillRow) Verdict() string {
	switch {
	case d.Result == "":
		return "MISSED: no result recorded"
	case d.Result != "ok":
		return "MISSED: " + d.Result
	case d.Over():
		return "MISSED: restore time over the RTO"
	case !d.Restore.OK:
		return "ok, but the restore time is " + d.Restore.missing()
	case !d.RTO.OK:
		return "ok; RTO " + d.RTO.missing()
	default:
		return "ok, within the RTO"
	}
}

type destroyedRow struct {
	KEK         string
	Version     uint32
	Ceremony    string
	Approvers   string
	Entry       uint64
	Holders     []holderRow
	Complete    bool
	Escrow      string // the escrow caveat, "" if none
	PublicKey   string
	Certificate bool // a certificate is in the pack
}

type holderRow struct {
	Node     string
	Attested bool
	Entry    uint64
}

// barChart is a stacked bar chart: one bar per label, one segment per series.
type barChart struct {
	Title  string
	Labels []string // x axis (days)
	Series []string // stacked series (KEKs)
	Values [][]int  // Values[label][series]
}

type pendingEvent struct {
	e ledger.Entry
	c *ceremonyRow
}

// reportBuilder gathers a Report from a pack's entries, in log
// order, and its other records (contents), then finish.
type reportBuilder struct {
	r          *Report
	keks       map[string]*kekReport
	ceremonies map[string]*ceremonyRow
	params     map[string]ceremony.Params // proposal id → its parameters, from the transcripts
	pending    []pendingEvent             // KEK ceremony closings whose KEK only the transcript names
	certs      map[string]*destroyedRow   // "kek/version"
	unwraps    map[unwrapKey]*unwrapRow
	keyOps     map[string]*keyOpRow
	denials    map[denialKey]*denialRow
	types      map[string]int
	perDay     map[string]map[string]int // day → KEK → unwraps
	drills     map[string]*drillDataset  // dataset → its drills
	resolving  bool

	cluster  string               // the pack's, for ShareReleases
	bound    bool                 // the trust file's state says releases are bound
	releases *audit.ShareReleases // made at the first entry
	acts     map[uint64]*activationRow
}

func newReportBuilder(r *Report) *reportBuilder {
	return &reportBuilder{r: r, keks: map[string]*kekReport{}, ceremonies: map[string]*ceremonyRow{},
		params: map[string]ceremony.Params{}, certs: map[string]*destroyedRow{},
		unwraps: map[unwrapKey]*unwrapRow{}, keyOps: map[string]*keyOpRow{},
		denials: map[denialKey]*denialRow{}, types: map[string]int{}, perDay: map[string]map[string]int{},
		acts: map[uint64]*activationRow{}, drills: map[string]*drillDataset{}}
}

// ceremony records a ceremony transcript: its proposal (canonical bytes),
// the officers whose approvals were accepted, and where it stands.
func (b *reportBuilder) ceremony(proposal []byte, approvers []string, status string, proposed, closed uint64) {
	p, err := ceremony.ParseProposal(proposal)
	if err != nil {
		return // Verify refuses such a pack; an unverified report shows the entries' view
	}
	b.params[p.ID] = p.Params
	c := b.ceremonyRow(p.ID)
	c.Operation, c.Proposer = string(p.Operation()), p.Proposer
	c.Description = ceremony.Describe(p, 0)
	if c.Status == "" {
		c.Status = status
	}
	if len(c.Approvers) == 0 {
		c.Approvers = approvers
	}
	c.Proposed, c.Closed = proposed, closed
}

func (b *reportBuilder) ceremonyRow(id string) *ceremonyRow {
	c := b.ceremonies[id]
	if c == nil {
		c = &ceremonyRow{ID: id}
		b.ceremonies[id] = c
	}
	return c
}

func (b *reportBuilder) certificate(dc client.DestructionCertificate) {
	d := b.destroyedRow(dc.KEKID, dc.Version)
	d.Certificate = true
	d.Ceremony, d.Approvers, d.Entry, d.Complete = dc.Ceremony, strings.Join(dc.Approvers, ", "), dc.Destroyed, dc.Complete
	d.PublicKey = digest(dc.PublicKey)
	d.Holders = nil
	for _, h := range dc.Holders {
		d.Holders = append(d.Holders, holderRow{Node: h.Node, Attested: h.Attested, Entry: h.Entry})
	}
	if len(dc.EscrowOfficers) > 0 {
		d.Escrow = fmt.Sprintf("escrowed with officers %s: any %d of them could still recover this version from their escrow shares; the nodes' attestations do not cover escrow",
			strings.Join(dc.EscrowOfficers, ", "), dc.EscrowM)
	}
}

func (b *reportBuilder) destroyedRow(id string, v uint32) *destroyedRow {
	k := id + "/" + strconv.FormatUint(uint64(v), 10)
	d := b.certs[k]
	if d == nil {
		d = &destroyedRow{KEK: id, Version: v}
		b.certs[k] = d
	}
	return d
}

func (b *reportBuilder) kek(id string) *kekReport {
	k := b.keks[id]
	if k == nil {
		k = &kekReport{ID: id}
		b.keks[id] = k
	}
	return k
}

func (k *kekReport) version(v uint32) *versionRow {
	for _, r := range k.Versions {
		if r.Version == v {
			return r
		}
	}
	r := &versionRow{Version: v}
	k.Versions = append(k.Versions, r)
	return r
}

// entry adds one entry to the report.
func (b *reportBuilder) entry(e ledger.Entry) error {
	r := b.r
	r.Entries++
	if r.FirstTime.IsZero() || e.Time.Before(r.FirstTime) {
		r.FirstTime = e.Time
	}
	if e.Time.After(r.LastTime) {
		r.LastTime = e.Time
	}
	b.types[e.Type]++
	if e.Outcome != ledger.OutcomeOK || e.Details["denied"] != "" {
		b.denial(e)
	}
	switch e.Type {
	case ledger.TypeWrap, ledger.TypeUnwrap, ledger.TypeDataKey, ledger.TypeRewrap, ledger.TypeActivate, ledger.TypeRelease:
		b.keyOp(e)
	case ledger.TypePropose, ledger.TypeApprove, ledger.TypeExecute, ledger.TypeRefuse:
		b.ceremonyEntry(e)
	case ledger.TypeDestroyed:
		b.attestation(e)
	case ledger.TypeTransfer:
		b.dataset(e.Details["dataset"])
		b.transfer(e)
	case ledger.TypePrune:
		b.dataset(e.Details["dataset"])
	case ledger.TypeDrill:
		b.drill(e)
	}
	b.shareRelease(e)
	return nil
}

// followReleases sets what the builder needs to follow share releases: the
// pack's cluster, and whether the trust file's verified state at the
// pack's start says the log records signed requests by then (t may be nil).
func (b *reportBuilder) followReleases(h audit.Header, t *audit.Trust) {
	b.cluster = h.Cluster
	if t != nil {
		st := t.State
		b.bound = st != nil && st.Size == h.From && st.ReleasesBound
	}
}

// shareRelease lists activations with their releases, and flags what
// ShareReleases finds and the releases no activation backs.
func (b *reportBuilder) shareRelease(e ledger.Entry) {
	if b.releases == nil {
		b.releases = audit.NewShareReleases(b.cluster, b.bound)
	}
	f := b.releases.Entry(e)
	if e.Type != ledger.TypeActivate && e.Type != ledger.TypeRelease {
		return
	}
	r := b.r
	if f != nil {
		b.flag(e, f.Code, f.Msg)
	}
	if e.Outcome != ledger.OutcomeOK {
		return
	}
	switch e.Type {
	case ledger.TypeActivate:
		r.ActivationTotal++
		if len(r.Activations) >= maxListed {
			return
		}
		a := &activationRow{Index: e.Index, Time: e.Time, Client: e.Actor.Identity, KEK: kekWords(e.KEKID, e.KEKVersion), Node: e.Node}
		if _, signed := e.Details["request"]; !signed {
			a.Unbound, a.Client = true, e.Details["for"]
			if from := e.Details["shares_from"]; from != "" {
				a.Releasers = strings.Split(from, ",")
			}
		}
		r.Activations = append(r.Activations, a)
		b.acts[e.Index] = a
	case ledger.TypeRelease:
		raw, named := e.Details["activation"]
		if !named {
			if f == nil {
				b.flag(e, "unbound", "a share release of the earlier format: it names no activation, so no client's signed request is bound to it")
			}
			return
		}
		if f != nil {
			return
		}
		if i, err := strconv.ParseUint(raw, 10, 64); err == nil {
			if a := b.acts[i]; a != nil {
				a.Releasers = append(a.Releasers, fmt.Sprintf("%s (entry %d)", e.Node, e.Index))
			}
		}
	}
}

func (b *reportBuilder) flag(e ledger.Entry, code, why string) {
	b.r.FlagTotal++
	if len(b.r.ReleaseFlags) < maxListed {
		b.r.ReleaseFlags = append(b.r.ReleaseFlags, releaseFlag{Index: e.Index, Time: e.Time, Type: e.Type, Node: e.Node,
			KEK: kekWords(e.KEKID, e.KEKVersion), To: e.Details["to"], For: e.Details["for"], Code: code, Why: why})
	}
}

// reasonCode is the code at the start of a denied entry's reason ("code: why").
func reasonCode(e ledger.Entry) string {
	if e.Details["withdraws"] != "" {
		return "withdrawn"
	}
	code, _, ok := strings.Cut(e.Reason, ":")
	if !ok || strings.ContainsAny(code, " \t") || code == "" {
		if e.Reason == "" {
			return string(e.Outcome)
		}
		return "other"
	}
	return code
}

func (b *reportBuilder) denial(e ledger.Entry) {
	if d := e.Details["denied"]; d != "" && e.Details["withdraws"] == "" {
		// A batch counts its refused items by code ("unwrap_failed:2,…").
		for _, part := range strings.Split(d, ",") {
			code, cnt, _ := strings.Cut(part, ":")
			c, err := strconv.Atoi(cnt)
			if err != nil || c < 1 {
				c = 1
			}
			b.addDenial(denialKey{e.Type, code}, c, e.Index)
		}
	} else {
		b.addDenial(denialKey{e.Type, reasonCode(e)}, itemCount(e), e.Index)
	}
	if len(b.r.DenialList) < maxListed {
		why := e.Reason
		switch {
		case why != "":
		case e.Type == ledger.TypeDrill:
			why = "restore drill: " + e.Details["result"]
		case e.Details["denied"] != "":
			why = "refused items: " + e.Details["denied"]
		default:
			why = "no reason recorded"
		}
		if f, ok, err := ledger.FoldOf(e); ok && err == nil {
			why += fmt.Sprintf(" (%d identical refusals from %s to %s, after entry %d)", f.Count,
				f.First.Format(time.RFC3339), f.Last.Format(time.RFC3339), f.After)
		}
		b.r.DenialList = append(b.r.DenialList, denialEntry{Index: e.Index, Time: e.Time, Type: e.Type,
			Actor: actorWords(e.Actor), KEK: kekWords(e.KEKID, e.KEKVersion), Why: why})
	}
}

// itemCount is how many operations an entry is about: a batch's (or a
// batch withdrawal's) "items", else one.
func itemCount(e ledger.Entry) int {
	if n, err := strconv.Atoi(e.Details["items"]); err == nil && n > 0 {
		return n
	}
	if f, ok, err := ledger.FoldOf(e); ok && err == nil {
		return int(min(f.Count, math.MaxInt32)) // a folded denial: the refusals it stands for
	}
	return 1
}

func (b *reportBuilder) addDenial(k denialKey, n int, idx uint64) {
	d := b.denials[k]
	if d == nil {
		d = &denialRow{denialKey: k}
		b.denials[k] = d
	}
	d.Count += n
	d.Last = idx
	b.r.DenialTotal += n
}

// okCount is how many operations an ok entry records: a batch's "ok"
// detail, else one.
func okCount(e ledger.Entry) int {
	if s, ok := e.Details["ok"]; ok {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return n
		}
	}
	return 1
}

func (b *reportBuilder) keyOp(e ledger.Entry) {
	id := e.KEKID
	if id == "" {
		id = "(none)"
	}
	op := b.keyOps[id]
	if op == nil {
		op = &keyOpRow{KEK: id}
		b.keyOps[id] = op
	}
	if e.Outcome != ledger.OutcomeOK {
		n := itemCount(e)
		op.Denied += n
		if e.Type == ledger.TypeUnwrap && e.Details["withdraws"] != "" {
			// A withdrawn answer does not count as an unwrap served.
			u := b.unwrapRow(e)
			u.Withdrawn += n
			u.Count -= n
			b.r.UnwrapTotal -= n
			b.r.Withdrawn += n
			b.kek(id).Unwraps -= n
			b.perDayAdd(e, id, -n)
		}
		return
	}
	n := okCount(e)
	if e.Details["denied"] != "" {
		op.Denied += max(itemCount(e)-n, 0)
	}
	switch e.Type {
	case ledger.TypeWrap:
		op.Wrap += n
	case ledger.TypeDataKey:
		op.DataKey += n
	case ledger.TypeRewrap:
		op.Rewrap += n
	case ledger.TypeActivate:
		op.Activate += n
	case ledger.TypeRelease:
		op.Release += n
	case ledger.TypeUnwrap:
		op.Unwrap += n
		u := b.unwrapRow(e)
		u.Count += n
		b.r.UnwrapTotal += n
		b.kek(id).Unwraps += n
		b.perDayAdd(e, id, n)
	}
}

func (b *reportBuilder) unwrapRow(e ledger.Entry) *unwrapRow {
	k := unwrapKey{Identity: e.Actor.Identity, Region: e.Actor.Region, KEK: e.KEKID}
	u := b.unwraps[k]
	if u == nil {
		u = &unwrapRow{unwrapKey: k, First: e.Time}
		b.unwraps[k] = u
	}
	u.Last = e.Time
	return u
}

func (b *reportBuilder) perDayAdd(e ledger.Entry, id string, n int) {
	day := e.Time.UTC().Format(time.DateOnly)
	m := b.perDay[day]
	if m == nil {
		m = map[string]int{}
		b.perDay[day] = m
	}
	m[id] += n
}

// kekOf names the KEK and version a ceremony entry is about: its details
// (kek.id, kek.version, kek.versions), else its proposal's parameters.
func (b *reportBuilder) kekOf(e ledger.Entry) (id, version string) {
	id, version = e.Details["kek.id"], e.Details["kek.version"]
	if v := e.Details["kek.versions"]; version == "" && v != "" {
		version = v
	}
	if id != "" {
		return id, version
	}
	switch p := b.params[e.Details["proposal.id"]].(type) {
	case ceremony.KEKCreate:
		id = p.KEKID
	case ceremony.KEKRotate:
		id = p.KEKID
	case ceremony.KEKPolicy:
		id = p.KEKID
	case ceremony.KEKDisable:
		id, version = p.KEKID, versionWords(p.Version, p.All)
	case ceremony.KEKEnable:
		id, version = p.KEKID, versionWords(p.Version, p.All)
	case ceremony.KEKDestroy:
		id, version = p.KEKID, versionWords(p.Version, false)
	case ceremony.LegalHoldSet:
		id = p.KEKID
	case ceremony.LegalHoldRelease:
		id = p.KEKID
	case ceremony.EscrowRecover:
		id, version = p.KEKID, versionWords(p.Version, false)
	}
	return id, version
}

func versionWords(v uint32, all bool) string {
	if all {
		return "all"
	}
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(v), 10)
}

func (b *reportBuilder) ceremonyEntry(e ledger.Entry) {
	pid := e.Details["proposal.id"]
	if pid == "" {
		return // a proposal refused before it parsed: counted with the denials
	}
	c := b.ceremonyRow(pid)
	if op := e.Details["proposal.operation"]; op != "" && c.Operation == "" {
		c.Operation = op
	}
	if p := e.Details["proposal.proposer"]; p != "" && c.Proposer == "" {
		c.Proposer = p
	}
	switch e.Type {
	case ledger.TypePropose:
		switch {
		case e.Outcome == ledger.OutcomeOK:
			c.Proposed, c.ProposedAt = e.Index, e.Time
			if c.Status == "" {
				c.Status = "pending"
			}
		case c.Proposed == 0 && c.Status == "":
			// Refused as it was submitted (a later refused submission
			// under the id of a live proposal, proposal_exists, is not).
			c.Status, c.Why, c.Closed, c.ClosedAt = "refused", e.Reason, e.Index, e.Time
		}
	case ledger.TypeApprove:
		if e.Outcome == ledger.OutcomeOK {
			if off := e.Details["officer"]; off != "" && !slices.Contains(c.Approvers, off) {
				c.Approvers = append(c.Approvers, off)
			}
		}
	case ledger.TypeExecute, ledger.TypeRefuse:
		c.Closed, c.ClosedAt = e.Index, e.Time
		c.Status = "executed"
		if e.Type == ledger.TypeRefuse {
			c.Status, c.Why = "refused", e.Reason
		}
		if a := e.Details["approvers"]; a != "" {
			c.Approvers = strings.Split(a, ",")
		}
		b.lifecycle(e, c)
	}
}

// lifecycle records a closed KEK ceremony in its KEK's history and moves
// the versions' states.
func (b *reportBuilder) lifecycle(e ledger.Entry, c *ceremonyRow) {
	op := c.Operation
	if !ceremony.Operation(op).IsKEK() {
		return
	}
	id, ver := b.kekOf(e)
	if id == "" {
		if _, known := b.params[c.ID]; !known && !b.resolving {
			// Only the transcript names the KEK (a refusal's entry does
			// not): resolve it once the transcripts are read.
			b.pending = append(b.pending, pendingEvent{e, c})
		}
		return
	}
	k := b.kek(id)
	ev := lifeEvent{Index: e.Index, Time: e.Time, What: op, Version: ver, Proposal: c.ID,
		Approvers: strings.Join(c.Approvers, ", "), Refused: e.Type == ledger.TypeRefuse}
	if ev.Refused {
		ev.Detail = "refused: " + e.Reason
		k.Events = append(k.Events, ev)
		return
	}
	var detail []string
	versions := func() []uint32 {
		var vs []uint32
		for _, s := range strings.Split(ver, ",") {
			if n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32); err == nil && n > 0 {
				vs = append(vs, uint32(n))
			}
		}
		return vs
	}
	switch ceremony.Operation(op) {
	case ceremony.OpKEKCreate, ceremony.OpKEKRotate:
		for _, v := range versions() {
			r := k.version(v)
			r.State, r.Created = ledger.KEKActive, e.Index
			r.Threshold, r.Holders, r.Escrow = e.Details["kek.threshold"], e.Details["kek.holders"], e.Details["kek.escrow"]
		}
		detail = append(detail, fmt.Sprintf("any %s of %s; public key %s", e.Details["kek.threshold"], e.Details["kek.holders"], e.Details["kek.public_key"]))
		if esc := e.Details["kek.escrow"]; esc != "" {
			detail = append(detail, "escrow: "+esc)
		}
	case ceremony.OpKEKDisable, ceremony.OpKEKEnable:
		state := ledger.KEKDisabled
		if ceremony.Operation(op) == ceremony.OpKEKEnable {
			state = ledger.KEKActive
		}
		for _, v := range versions() {
			k.version(v).State = state
		}
	case ceremony.OpKEKDestroy:
		for _, v := range versions() {
			r := k.version(v)
			r.State, r.Destroyed = ledger.KEKDestroyed, e.Index
			d := b.destroyedRow(id, v)
			if d.Entry == 0 {
				d.Entry, d.Ceremony, d.Approvers = e.Index, c.ID, ev.Approvers
			}
		}
	case ceremony.OpKEKPolicy:
		detail = append(detail, "policy "+e.Details["kek.policy"])
	case ceremony.OpLegalHoldSet:
		k.LegalHold = e.Details["legal_hold.reason"]
		detail = append(detail, fmt.Sprintf("reason %q", e.Details["legal_hold.reason"]))
	case ceremony.OpLegalHoldRelease:
		k.LegalHold = ""
		detail = append(detail, fmt.Sprintf("reason %q", e.Details["legal_hold.reason"]))
	case ceremony.OpEscrowRecover:
		for _, v := range versions() {
			r := k.version(v)
			r.Recovered = append(r.Recovered, e.Index)
			if h := e.Details["kek.holders"]; h != "" {
				r.Holders = h
			}
		}
		detail = append(detail, fmt.Sprintf("re-dealt to %s; reason %q", e.Details["kek.holders"], e.Details["escrow.reason"]))
	}
	ev.Detail = strings.Join(detail, "; ")
	k.Events = append(k.Events, ev)
}

// attestation records a node's destruction statement entry.
func (b *reportBuilder) attestation(e ledger.Entry) {
	if e.KEKID == "" || e.Outcome != ledger.OutcomeOK {
		return
	}
	node := e.Details["node.id"]
	b.kek(e.KEKID).Events = append(b.kek(e.KEKID).Events, lifeEvent{Index: e.Index, Time: e.Time, What: "destruction attested",
		Version: strconv.FormatUint(uint64(e.KEKVersion), 10), Proposal: e.Details["ceremony"],
		Detail: fmt.Sprintf("node %s: its HSM key %s is destroyed (statement %s)", node, e.Details["label"], e.Details["statement"])})
	d := b.destroyedRow(e.KEKID, e.KEKVersion)
	if !d.Certificate {
		// No certificate in the pack: the entries say who attested.
		if !slices.ContainsFunc(d.Holders, func(h holderRow) bool { return h.Node == node }) {
			d.Holders = append(d.Holders, holderRow{Node: node, Attested: true, Entry: e.Index})
		}
	}
}

func (b *reportBuilder) transfer(e ledger.Entry) {
	if len(b.r.Transfers) >= maxListed {
		b.r.TransferMore++
		return
	}
	d := maps.Clone(e.Details)
	take := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := d[k]; ok {
				delete(d, k)
				return v
			}
		}
		return ""
	}
	t := transferRow{Index: e.Index, Time: e.Time, Actor: actorWords(e.Actor), Outcome: string(e.Outcome),
		Dataset:  take("dataset"),
		Checksum: take("sha256", "checksum", "ciphertext_sha256"),
		Where:    strings.TrimSpace(take("destination", "target") + " " + take("region", "destination_region")),
		Why:      take("decision", "purpose", "reason", "why"),
		Policy:   take("policy", "dataset_policy"),
	}
	var other []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		other = append(other, k+"="+d[k])
	}
	t.Other = strings.Join(other, ", ")
	b.r.Transfers = append(b.r.Transfers, t)
}

// dataset is the drills of a dataset a backup entry names ("" for none).
func (b *reportBuilder) dataset(name string) *drillDataset {
	if name == "" {
		return nil
	}
	d := b.drills[name]
	if d == nil {
		d = &drillDataset{Dataset: name}
		b.drills[name] = d
	}
	return d
}

// drill records a restore drill: the newest of its dataset so far (entries
// come in log order), and a miss if it is one.
func (b *reportBuilder) drill(e ledger.Entry) {
	name := e.Details["dataset"]
	if name == "" {
		name = "(none)"
	}
	d := &drillRow{Index: e.Index, Time: e.Time, Dataset: name, Archive: e.Details["archive"], Agent: actorWords(e.Actor),
		Target: e.Details["target"], Result: e.Details["result"],
		Restore: parseDrillFigure(e.Details["restore_seconds"]), RTO: parseDrillFigure(e.Details["rto_seconds"])}
	ds := b.dataset(name)
	ds.Drills++
	ds.Last = d
	b.r.DrillTotal++
	if d.Missed() {
		ds.Misses++
		b.r.DrillMisses++
		if len(b.r.MissedDrills) < maxListed {
			b.r.MissedDrills = append(b.r.MissedDrills, d)
		}
	}
}

func actorWords(a ledger.Actor) string {
	s := a.Identity
	if a.Region != "" && !strings.Contains(s, "region=") {
		s += " (" + a.Region + ")"
	}
	return s
}

func kekWords(id string, v uint32) string {
	if id == "" {
		return ""
	}
	if v == 0 {
		return id
	}
	return fmt.Sprintf("%s v%d", id, v)
}

// contents adds the pack's records other than the entries: header,
// officers, ceremony transcripts, destruction certificates, checkpoint.
func (b *reportBuilder) contents(c *audit.Contents) {
	r := b.r
	h := c.Header
	r.Cluster, r.Origin, r.From, r.To, r.Created = h.Cluster, h.Origin, h.From, h.To, h.Created
	for _, o := range c.Officers {
		r.Officers = append(r.Officers, officerRow{ID: o.ID, Fingerprint: o.Fingerprint})
	}
	for _, cr := range c.Ceremonies {
		approvers := make([]string, len(cr.Approvals))
		for i, a := range cr.Approvals {
			approvers[i] = a.Officer
		}
		b.ceremony([]byte(cr.Proposal), approvers, cr.Status, cr.Proposed, cr.Closed)
	}
	for _, dc := range c.Certificates {
		b.certificate(dc)
	}
	if cp, err := checkpointBody(c.Checkpoint); err == nil {
		r.CheckpointSize, r.CheckpointRoot = cp.Size, rootWords(cp.Hash)
	}
	b.resolving = true
	for _, p := range b.pending {
		b.lifecycle(p.e, p.c)
	}
	b.pending = nil
}

// finish sorts what was gathered and builds the chart.
func (b *reportBuilder) finish() *Report {
	r := b.r
	for _, t := range slices.Sorted(maps.Keys(b.types)) {
		r.ByType = append(r.ByType, nameCount{t, b.types[t]})
	}
	for _, id := range slices.Sorted(maps.Keys(b.keks)) {
		k := b.keks[id]
		slices.SortFunc(k.Versions, func(a, b *versionRow) int { return cmp.Compare(a.Version, b.Version) })
		slices.SortStableFunc(k.Events, func(a, b lifeEvent) int { return cmp.Compare(a.Index, b.Index) })
		r.KEKs = append(r.KEKs, k)
	}
	r.Unwraps = slices.Collect(maps.Values(b.unwraps))
	slices.SortFunc(r.Unwraps, func(a, b *unwrapRow) int {
		return cmp.Or(cmp.Compare(a.KEK, b.KEK), cmp.Compare(a.Identity, b.Identity), cmp.Compare(a.Region, b.Region))
	})
	r.KeyOps = slices.Collect(maps.Values(b.keyOps))
	slices.SortFunc(r.KeyOps, func(a, b *keyOpRow) int { return cmp.Compare(a.KEK, b.KEK) })
	r.Denials = slices.Collect(maps.Values(b.denials))
	slices.SortFunc(r.Denials, func(a, b *denialRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Code, b.Code))
	})
	r.Ceremonies = slices.Collect(maps.Values(b.ceremonies))
	slices.SortFunc(r.Ceremonies, func(a, b *ceremonyRow) int {
		return cmp.Or(cmp.Compare(a.first(), b.first()), cmp.Compare(a.ID, b.ID))
	})
	for _, c := range r.Ceremonies {
		if c.Status == "" {
			c.Status = "pending"
		}
	}
	r.Destroyed = slices.Collect(maps.Values(b.certs))
	slices.SortFunc(r.Destroyed, func(a, b *destroyedRow) int {
		return cmp.Or(cmp.Compare(a.KEK, b.KEK), cmp.Compare(a.Version, b.Version))
	})
	for _, d := range r.Destroyed {
		slices.SortFunc(d.Holders, func(a, b holderRow) int { return cmp.Compare(a.Node, b.Node) })
	}
	for _, name := range slices.Sorted(maps.Keys(b.drills)) {
		d := b.drills[name]
		if d.Last == nil {
			r.Undrilled++
		}
		r.Drills = append(r.Drills, d)
	}
	r.Chart = b.chart()
	return r
}

// first is the ceremony's earliest entry in the pack.
func (c *ceremonyRow) first() uint64 {
	if c.Proposed != 0 || c.Closed == 0 {
		return c.Proposed
	}
	return c.Closed
}

// maxBars bounds the chart's bars: past it, days are grouped into weeks.
const maxBars = 120

// chart is unwraps per day (or per week, for long packs) per KEK, every
// day between the first and the last with an unwrap.
func (b *reportBuilder) chart() barChart {
	c := barChart{Title: "Unwraps per day, by KEK"}
	days := slices.Sorted(maps.Keys(b.perDay))
	if len(days) == 0 {
		return c
	}
	series := map[string]bool{}
	for _, m := range b.perDay {
		for k, n := range m {
			if n != 0 {
				series[k] = true
			}
		}
	}
	c.Series = slices.Sorted(maps.Keys(series))
	first, _ := time.Parse(time.DateOnly, days[0])
	last, _ := time.Parse(time.DateOnly, days[len(days)-1])
	step := 24 * time.Hour
	if n := int(last.Sub(first)/step) + 1; n > maxBars {
		c.Title = "Unwraps per week, by KEK"
		step *= 7
	}
	for t := first; !t.After(last); t = t.Add(step) {
		row := make([]int, len(c.Series))
		for d := t; d.Before(t.Add(step)) && !d.After(last); d = d.Add(24 * time.Hour) {
			for i, s := range c.Series {
				row[i] += b.perDay[d.Format(time.DateOnly)][s]
			}
		}
		c.Labels = append(c.Labels, t.Format(time.DateOnly))
		c.Values = append(c.Values, row)
	}
	return c
}
