package audit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/custos-eu/custos/keysvc/audit"
)

// (Moved here from cmd/custos with the export.)
func TestFetchEntriesShortPages(t *testing.T) {
	src := shortPages{n: 2500, page: 7}
	var got uint64
	err := audit.FetchEntries(context.Background(), src, 10, 2500, 3, func(i uint64, raw []byte) error {
		if i != 10+got || string(raw) != fmt.Sprint(i) {
			return fmt.Errorf("entry %d is %q, want %d", i, raw, 10+got)
		}
		got++
		return nil
	})
	if err != nil || got != 2490 {
		t.Fatalf("fetched %d, %v", got, err)
	}
	stop := errors.New("stop")
	if err := audit.FetchEntries(context.Background(), src, 0, 2500, 3, func(i uint64, _ []byte) error {
		if i == 1500 {
			return stop
		}
		return nil
	}); err != stop {
		t.Fatalf("FetchEntries returned %v, want fn's error", err)
	}
}

// shortPages serves entries "0".."n-1" in pages of at most page.
type shortPages struct{ n, page uint64 }

func (s shortPages) Entries(_ context.Context, start uint64, limit int) ([][]byte, error) {
	var out [][]byte
	for i := start; i < s.n && i < start+s.page && len(out) < limit; i++ {
		out = append(out, []byte(fmt.Sprint(i)))
	}
	return out, nil
}
