package keysvc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeLog is a commit function: it numbers entries like the log would,
// records each batch, and blocks while the gate is closed.
type fakeLog struct {
	mu      sync.Mutex
	next    uint64
	batches [][]*appendReq
	at      []time.Time
	fail    error
	gate    chan struct{}
	calls   chan struct{}
}

func newFakeLog() *fakeLog {
	return &fakeLog{gate: make(chan struct{}), calls: make(chan struct{}, 100)}
}

func (f *fakeLog) open() { close(f.gate) }

func (f *fakeLog) commit(ctx context.Context, reqs []*appendReq) {
	f.mu.Lock()
	f.batches = append(f.batches, reqs)
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	f.calls <- struct{}{}
	select {
	case <-f.gate:
	case <-ctx.Done():
		deliver(reqs, 0, ctx.Err())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		deliver(reqs, 0, f.fail)
		return
	}
	first := f.next
	for _, r := range reqs {
		f.next += uint64(len(r.raws))
	}
	deliver(reqs, first, nil)
}

func (f *fakeLog) batchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		n := 0
		for _, r := range b {
			n += len(r.raws)
		}
		out = append(out, n)
	}
	return out
}

func testBatcher(t *testing.T, cfg GroupCommit, f *fakeLog) *batcher {
	t.Helper()
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 1000
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 1
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 1000
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Hour
	}
	b := newBatcher(cfg, 10*time.Second, newCounters(), f.commit)
	t.Cleanup(func() {
		b.close()
		select {
		case <-f.gate:
		default:
			f.open()
		}
		b.wait()
	})
	return b
}

func req(name string, entries, size int) *appendReq {
	r := &appendReq{done: make(chan appendRes, 1), bytes: entries * size}
	for i := range entries {
		r.raws = append(r.raws, []byte(fmt.Sprintf("%s/%d", name, i)))
	}
	return r
}

type outcome struct {
	name  string
	first uint64
	err   error
}

// submitAll submits reqs concurrently, in order (each once the previous is
// queued), and returns a channel of their outcomes.
func submitAll(t *testing.T, b *batcher, ctx context.Context, reqs map[string]*appendReq, order []string) chan outcome {
	t.Helper()
	out := make(chan outcome, len(order))
	for _, name := range order {
		n := b.queued.Load()
		go func() {
			first, err := b.submit(ctx, reqs[name])
			out <- outcome{name, first, err}
		}()
		deadline := time.Now().Add(5 * time.Second)
		for b.queued.Load() == n {
			if time.Now().After(deadline) {
				t.Fatalf("%s not queued", name)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return out
}

func waitCall(t *testing.T, f *fakeLog) {
	t.Helper()
	select {
	case <-f.calls:
	case <-time.After(5 * time.Second):
		t.Fatal("no batch proposed")
	}
}

// waitDrained waits until the batcher has taken everything from its queue.
func waitDrained(t *testing.T, b *batcher) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.m.queueDepth.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("queue not drained")
		}
		time.Sleep(time.Millisecond)
	}
}

func collect(t *testing.T, ch chan outcome, n int) map[string]outcome {
	t.Helper()
	got := map[string]outcome{}
	for range n {
		select {
		case o := <-ch:
			got[o.name] = o
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d answers", len(got), n)
		}
	}
	return got
}

// TestBatcherCancelledWaiter: a waiter that gives up before its batch is
// proposed is left out of it; the others get contiguous indexes.
func TestBatcherCancelledWaiter(t *testing.T) {
	f := newFakeLog()
	b := testBatcher(t, GroupCommit{}, f)
	reqs := map[string]*appendReq{"a": req("a", 1, 10), "b": req("b", 2, 10), "c": req("c", 1, 10), "d": req("d", 3, 10)}
	out := submitAll(t, b, context.Background(), reqs, []string{"a"})
	waitCall(t, f) // a is in flight alone; the next batch collects behind it

	ctx, cancel := context.WithCancel(context.Background())
	bOut := submitAll(t, b, ctx, reqs, []string{"b"})
	rest := submitAll(t, b, context.Background(), reqs, []string{"c", "d"})
	waitDrained(t, b)
	cancel()
	if o := <-bOut; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", o.err)
	}
	f.open()
	waitCall(t, f)
	got := collect(t, out, 1)
	for k, v := range collect(t, rest, 2) {
		got[k] = v
	}
	if got["a"].first != 0 || got["c"].first != 1 || got["d"].first != 2 {
		t.Fatalf("indexes %+v, want a=0 c=1 d=2", got)
	}
	for _, batch := range f.batches {
		for _, r := range batch {
			if r == reqs["b"] {
				t.Fatal("cancelled request was proposed")
			}
		}
	}
}

// TestBatcherBounds: batches respect MaxEntries and MaxBytes; a request's
// entries stay together, even one larger than the bounds.
func TestBatcherBounds(t *testing.T) {
	f := newFakeLog()
	b := testBatcher(t, GroupCommit{MaxEntries: 4, MaxBytes: 1000}, f)
	reqs := map[string]*appendReq{"first": req("first", 1, 10)}
	order := []string{}
	for i := range 10 {
		name := fmt.Sprint("s", i)
		reqs[name] = req(name, 1, 10)
		order = append(order, name)
	}
	reqs["triple"] = req("triple", 3, 10)
	reqs["huge"] = req("huge", 6, 10)
	reqs["fat1"] = req("fat1", 1, 600)
	reqs["fat2"] = req("fat2", 1, 600)
	order = append(order, "triple", "huge", "fat1", "fat2")
	first := submitAll(t, b, context.Background(), reqs, []string{"first"})
	waitCall(t, f)
	out := submitAll(t, b, context.Background(), reqs, order)
	f.open()
	got := collect(t, out, len(order))
	got["first"] = (<-first)
	sizes := f.batchSizes()
	for i, n := range sizes {
		if n > 4 && n != 6 {
			t.Errorf("batch %d has %d entries", i, n)
		}
	}
	for _, batch := range f.batches {
		bytes := 0
		for _, r := range batch {
			bytes += r.bytes
		}
		if bytes > 1000 && len(batch) > 1 {
			t.Errorf("batch of %d bytes", bytes)
		}
	}
	// Every request got a distinct, contiguous range covering the log.
	used := map[uint64]string{}
	for name, o := range got {
		if o.err != nil {
			t.Fatalf("%s: %v", name, o.err)
		}
		for i := range len(reqs[name].raws) {
			if other, dup := used[o.first+uint64(i)]; dup {
				t.Fatalf("index %d given to %s and %s", o.first+uint64(i), name, other)
			}
			used[o.first+uint64(i)] = name
		}
	}
	if len(used) != 1+10+3+6+2 {
		t.Fatalf("%d indexes used", len(used))
	}
	t.Logf("batch sizes %v", sizes)
}

// TestBatcherFailure: every waiter of a failed batch gets its error.
func TestBatcherFailure(t *testing.T) {
	f := newFakeLog()
	f.fail = errors.New("quorum lost")
	b := testBatcher(t, GroupCommit{}, f)
	reqs := map[string]*appendReq{"a": req("a", 1, 10), "b": req("b", 1, 10), "c": req("c", 2, 10)}
	out := submitAll(t, b, context.Background(), reqs, []string{"a", "b", "c"})
	f.open()
	for name, o := range collect(t, out, 3) {
		if !errors.Is(o.err, f.fail) {
			t.Errorf("%s: %v, want the batch's error", name, o.err)
		}
	}
}

// TestBatcherMaxDelay: with a batch in flight and a free slot, the next
// batch waits MaxDelay for company before it goes.
func TestBatcherMaxDelay(t *testing.T) {
	f := newFakeLog()
	const delay = 100 * time.Millisecond
	b := testBatcher(t, GroupCommit{MaxDelay: delay, MaxInFlight: 2}, f)
	reqs := map[string]*appendReq{"a": req("a", 1, 10), "b": req("b", 1, 10)}
	submitAll(t, b, context.Background(), reqs, []string{"a"})
	waitCall(t, f)
	start := time.Now()
	submitAll(t, b, context.Background(), reqs, []string{"b"})
	waitCall(t, f) // b goes while a is still in flight
	if d := time.Since(start); d < delay-10*time.Millisecond {
		t.Fatalf("second batch proposed after %v, before MaxDelay %v", d, delay)
	}
}

// TestBatcherClose: queued requests fail with ErrClosed, the batch in flight
// is aborted, later submits fail.
func TestBatcherClose(t *testing.T) {
	f := newFakeLog()
	b := testBatcher(t, GroupCommit{}, f)
	reqs := map[string]*appendReq{"a": req("a", 1, 10), "b": req("b", 1, 10), "c": req("c", 1, 10)}
	inFlight := submitAll(t, b, context.Background(), reqs, []string{"a"})
	waitCall(t, f)
	queued := submitAll(t, b, context.Background(), reqs, []string{"b", "c"})
	waitDrained(t, b)
	b.close()
	for name, o := range collect(t, queued, 2) {
		if !errors.Is(o.err, ErrClosed) {
			t.Errorf("%s: %v, want ErrClosed", name, o.err)
		}
	}
	b.wait() // the batch in flight is aborted: never reported as a success
	if o := <-inFlight; !errors.Is(o.err, context.Canceled) {
		t.Errorf("in-flight batch: %v, want it aborted", o.err)
	}
	if _, err := b.submit(context.Background(), req("late", 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
}
