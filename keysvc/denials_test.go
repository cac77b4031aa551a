package keysvc

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// denialLog is an appendFn that records entries and can be made to fail.
type denialLog struct {
	mu      sync.Mutex
	entries []ledger.Entry
	fail    bool
}

func (l *denialLog) append(_ context.Context, e ledger.Entry) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return 0, errors.New("no quorum")
	}
	l.entries = append(l.entries, e)
	return uint64(len(l.entries)), nil
}

func (l *denialLog) snapshot() []ledger.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ledger.Entry(nil), l.entries...)
}

type denialClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *denialClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *denialClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func denial(who, reason, rid string) ledger.Entry {
	return ledger.Entry{Type: "kek.unwrap", Actor: ledger.Actor{Identity: who, CertFingerprint: "fp-" + who},
		KEKID: "k", KEKVersion: 1, RequestID: rid, Outcome: ledger.OutcomeDenied, Reason: reason,
		Details: map[string]string{"context": "sha256:" + rid}}
}

// TestDenialFolder: concurrent identical denials cost one entry per
// window, distinct ones are never folded together, and closing flushes.
func TestDenialFolder(t *testing.T) {
	var l denialLog
	clk := &denialClock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	var folded atomic.Uint64
	f := newDenialFolder(time.Minute, clk.now, slog.New(slog.DiscardHandler), l.append,
		func(k uint64) { folded.Add(k) })
	ctx := context.Background()
	first, err := f.logDenial(ctx, denial("a", "policy_denied: no", "r0"))
	if err != nil || first != 1 {
		t.Fatalf("first denial: %d, %v", first, err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				i, err := f.logDenial(ctx, denial("a", "policy_denied: no", strconv.Itoa(g*100+i)))
				if err != nil || i != first {
					t.Errorf("repeat: %d, %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := f.logDenial(ctx, denial("b", "policy_denied: no", "rb")); err != nil { // another client
		t.Fatal(err)
	}
	if _, err := f.logDenial(ctx, denial("a", "kek_disabled: off", "rc")); err != nil { // another reason
		t.Fatal(err)
	}
	if n := len(l.snapshot()); n != 3 {
		t.Fatalf("%d entries before the window closed, want 3", n)
	}
	clk.add(time.Minute)
	f.close()
	es := l.snapshot()
	if len(es) != 4 {
		t.Fatalf("%d entries after close, want 4: %+v", len(es), es)
	}
	fe := es[3]
	if fe.Details[ledger.DetailFoldCount] != "400" || fe.Details[ledger.DetailFoldAfter] != "1" || fe.Actor.Identity != "a" ||
		fe.Reason != "policy_denied: no" || fe.Details[ledger.DetailFoldFirst] == "" || fe.Details[ledger.DetailFoldLast] == "" {
		t.Errorf("folded entry: %+v", fe)
	}
	if fe.Details["context"] != "sha256:r0" {
		t.Errorf("folded entry keeps the first denial's details, got %q", fe.Details["context"])
	}
	fe.Time = clk.now()
	if _, err := fe.Marshal(); err != nil {
		t.Errorf("folded entry invalid: %v", err)
	}
	if n := folded.Load(); n != 400 {
		t.Errorf("folded counter %d", n)
	}
}

// TestDenialFolderRetries: a fold whose append fails is kept and logged
// once the log commits again; a first denial that cannot be logged is an
// error (fail closed).
func TestDenialFolderRetries(t *testing.T) {
	var l denialLog
	clk := &denialClock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	f := newDenialFolder(time.Second, clk.now, slog.New(slog.DiscardHandler), l.append, func(uint64) {})
	defer f.close()
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.logDenial(ctx, denial("a", "x: y", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	l.fail = true
	l.mu.Unlock()
	if _, err := f.logDenial(ctx, denial("z", "x: y", "z")); err == nil {
		t.Fatal("a denial that could not be logged was answered")
	}
	clk.add(2 * time.Second)
	f.flush(false) // fails: kept
	l.mu.Lock()
	l.fail = false
	l.mu.Unlock()
	f.flush(false)
	es := l.snapshot()
	if len(es) != 2 || es[1].Details[ledger.DetailFoldCount] != "2" {
		t.Fatalf("entries after the log came back: %+v", es)
	}
}

// TestDenialFolderConcurrentFirst: identical denials that arrive while the
// first is being logged wait for it and are folded, not logged again.
func TestDenialFolderConcurrentFirst(t *testing.T) {
	var l denialLog
	gate := make(chan struct{})
	slow := func(ctx context.Context, e ledger.Entry) (uint64, error) {
		<-gate
		return l.append(ctx, e)
	}
	clk := &denialClock{t: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	f := newDenialFolder(time.Minute, clk.now, slog.New(slog.DiscardHandler), slow, func(uint64) {})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := f.logDenial(context.Background(), denial("a", "x: y", strconv.Itoa(i))); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let them queue behind the first
	close(gate)
	wg.Wait()
	f.close()
	es := l.snapshot()
	if len(es) != 2 || es[1].Details[ledger.DetailFoldCount] != "7" {
		t.Fatalf("entries: %+v", es)
	}
}
