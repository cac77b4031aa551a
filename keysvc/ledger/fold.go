// Folded denials: one entry standing for repeats of a denial.

package ledger

import (
	"fmt"
	"strconv"
	"time"
)

// Details of a folded denial. A node that refuses one client the same way
// again and again (same certificate, type, KEK version and reason) logs the
// first refusal as usual, then, when its fold window closes, one copy of
// it with these details: Count further identical refusals, made from First
// to Last, after the entry at index After.
const (
	DetailFoldCount = "denials.count"
	DetailFoldFirst = "denials.first"
	DetailFoldLast  = "denials.last"
	DetailFoldAfter = "denials.after"
)

// Fold is what a folded denial stands for.
type Fold struct {
	Count       uint64
	First, Last time.Time
	After       uint64 // index of the individually logged first denial
}

// FoldOf returns e's fold, if e is a folded denial. It is an error for e
// to carry some fold details and not others, or values that cannot be: a
// count of 0, times out of order or after the entry's own, an After that
// is not an earlier entry, or an outcome other than denied.
func FoldOf(e Entry) (Fold, bool, error) {
	count, hasCount := e.Details[DetailFoldCount]
	first, hasFirst := e.Details[DetailFoldFirst]
	last, hasLast := e.Details[DetailFoldLast]
	after, hasAfter := e.Details[DetailFoldAfter]
	if !hasCount && !hasFirst && !hasLast && !hasAfter {
		return Fold{}, false, nil
	}
	bad := func(format string, args ...any) (Fold, bool, error) {
		return Fold{}, true, fmt.Errorf("folded denial: "+format, args...)
	}
	if !hasCount || !hasFirst || !hasLast || !hasAfter {
		return bad("want all of %s, %s, %s and %s", DetailFoldCount, DetailFoldFirst, DetailFoldLast, DetailFoldAfter)
	}
	if e.Outcome != OutcomeDenied {
		return bad("outcome %q, want denied", e.Outcome)
	}
	var f Fold
	var err error
	if f.Count, err = strconv.ParseUint(count, 10, 64); err != nil || f.Count == 0 || count[0] == '0' {
		return bad("%s %q is not a positive decimal count", DetailFoldCount, count)
	}
	if f.After, err = strconv.ParseUint(after, 10, 64); err != nil || (after[0] == '0' && after != "0") || f.After >= e.Index && e.Index > 0 {
		return bad("%s %q is not the index of an earlier entry", DetailFoldAfter, after)
	}
	if f.First, err = time.Parse(timeLayout, first); err != nil {
		return bad("%s %q is not a time", DetailFoldFirst, first)
	}
	if f.Last, err = time.Parse(timeLayout, last); err != nil {
		return bad("%s %q is not a time", DetailFoldLast, last)
	}
	if f.Last.Before(f.First) || (!e.Time.IsZero() && e.Time.Before(f.Last)) {
		return bad("times out of order: first %s, last %s, entry %s", first, last, e.Time.Format(timeLayout))
	}
	return f, true, nil
}

// Denials is how many refusals e records: 0 for an entry that is not
// denied, Count for a folded denial, else 1. A batch's refused items are
// the batch's own business (its "denied" detail).
func Denials(e Entry) uint64 {
	if e.Outcome != OutcomeDenied {
		return 0
	}
	if f, ok, err := FoldOf(e); ok && err == nil {
		return f.Count
	}
	return 1
}
