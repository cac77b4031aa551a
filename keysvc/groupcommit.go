// Group commit: Append calls queue their entries; one goroutine cuts batches
// and each batch becomes one raft command (on the leader) or one forwarded
// request (on a follower). Every waiter gets its own index or the batch's error.

package keysvc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Request states: a waiter whose context ends while its request is still
// pending cancels it, and the batcher never proposes it; the batcher takes
// the requests of a batch when it closes the batch, and marks them sent
// (claim) just before it proposes them or forwards them to the leader. A
// waiter may still cancel a taken request until then (it was not done);
// from sent on, a request's outcome is the batch's. A forward that never
// reached the leader puts its requests back to taken.
const (
	reqPending int32 = iota
	reqTaken
	reqCancelled
	reqSent
)

// appendReq is one Append or AppendBatch call: its entries stay contiguous.
type appendReq struct {
	entries    []ledger.Entry // as prepared (for forwarding; the leader restamps times)
	raws       [][]byte       // canonical bytes, index 0, time stamped by this node
	bytes      int
	leaderOnly bool // AppendBatch: never forwarded
	enqueued   time.Time
	state      atomic.Int32
	done       chan appendRes // buffered: the batcher never blocks on a waiter
}

type appendRes struct {
	first uint64
	err   error
}

func (r *appendReq) take() bool { return r.state.CompareAndSwap(reqPending, reqTaken) }

// claim marks reqs sent and returns those it may send: the ones no waiter
// cancelled meanwhile, in order.
func claim(reqs []*appendReq) []*appendReq {
	out := reqs[:0:0]
	for _, r := range reqs {
		if r.state.CompareAndSwap(reqTaken, reqSent) || r.state.Load() == reqSent {
			out = append(out, r)
		}
	}
	return out
}

// unsend puts requests whose forward never reached a leader back to taken,
// where their waiters may still give up on them as not done.
func unsend(reqs []*appendReq) {
	for _, r := range reqs {
		r.state.CompareAndSwap(reqSent, reqTaken)
	}
}

// commitFunc commits one batch and must answer every request in it.
type commitFunc func(ctx context.Context, reqs []*appendReq)

// batcher owns the queue and the goroutine that cuts batches.
type batcher struct {
	commit  commitFunc
	timeout time.Duration // bound of each batch's commit
	cfg     GroupCommit
	m       *counters
	queue   chan *appendReq
	slots   chan struct{} // one token per batch in flight
	idle    chan struct{} // signalled when a batch finishes
	stop    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup // proposals in flight
	ctx     context.Context
	abort   context.CancelFunc

	inFlight atomic.Int32
	queued   atomic.Uint64 // requests ever queued
	stopOnce sync.Once
}

func newBatcher(cfg GroupCommit, timeout time.Duration, m *counters, commit commitFunc) *batcher {
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher{
		commit: commit, timeout: timeout, cfg: cfg, m: m,
		queue: make(chan *appendReq, cfg.MaxQueue),
		slots: make(chan struct{}, cfg.MaxInFlight),
		idle:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		ctx:   ctx, abort: cancel,
	}
	go b.run()
	return b
}

// submit queues req and waits for its outcome within ctx. A result that is
// ready wins over an expired ctx.
func (b *batcher) submit(ctx context.Context, req *appendReq) (uint64, error) {
	select {
	case <-b.stop:
		return 0, ErrClosed
	default:
	}
	b.m.queueDepth.Add(1) // before the batcher can take it, so the gauge never dips below 0
	select {
	case b.queue <- req:
		b.queued.Add(1)
	case <-b.stop:
		b.m.queueDepth.Add(-1)
		return 0, ErrClosed
	case <-ctx.Done():
		b.m.queueDepth.Add(-1)
		return 0, ctxDone(ctx, "append not queued")
	}
	select {
	case r := <-req.done:
		return r.first, r.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqPending, reqCancelled) {
			return 0, ctxDone(ctx, "append not proposed")
		}
		if req.state.CompareAndSwap(reqTaken, reqCancelled) {
			// In a batch that has not reached a leader: not done.
			return 0, fmt.Errorf("%w: append not sent, no leader was reached before the deadline (%v)", ErrNotLeader, ctx.Err())
		}
		select {
		case r := <-req.done:
			return r.first, r.err
		default:
			return 0, ctxDone(ctx, "append proposed but not confirmed (outcome unknown)")
		}
	}
}

// close stops taking requests, fails the queued ones with ErrClosed and
// aborts forwarding; wait then waits for batches in flight.
func (b *batcher) close() {
	b.stopOnce.Do(func() {
		close(b.stop)
		b.abort()
	})
}

func (b *batcher) wait() {
	<-b.done
	b.wg.Wait()
}

// batch is the requests cut together.
type batch struct {
	reqs    []*appendReq
	entries int
	bytes   int
}

func (bt *batch) add(r *appendReq) {
	bt.reqs = append(bt.reqs, r)
	bt.entries += len(r.raws)
	bt.bytes += r.bytes
}

// fits reports whether r may join bt: a batch holds at least one request,
// and more only within the bounds.
func (b *batcher) fits(bt *batch, r *appendReq) bool {
	return len(bt.reqs) == 0 ||
		(bt.entries+len(r.raws) <= b.cfg.MaxEntries && bt.bytes+r.bytes <= b.cfg.MaxBytes)
}

func (b *batcher) full(bt *batch) bool {
	return bt.entries >= b.cfg.MaxEntries || bt.bytes >= b.cfg.MaxBytes
}

// run cuts batches: a batch starts with the first request waiting and is
// proposed when full (MaxEntries, MaxBytes), when MaxDelay has passed since
// it started, or as soon as no other batch is in flight and the queue is
// empty (so a lone Append does not wait MaxDelay). It waits for a free
// in-flight slot before proposing, collecting more requests meanwhile.
func (b *batcher) run() {
	defer close(b.done)
	var carry *appendReq // a request that did not fit the previous batch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *appendReq
		if carry != nil {
			first, carry = carry, nil
		} else {
			select {
			case first = <-b.queue:
				b.m.queueDepth.Add(-1)
			case <-b.stop:
				b.drain()
				return
			}
		}
		if first.state.Load() == reqCancelled {
			continue // its waiter gave up
		}
		bt := &batch{}
		bt.add(first)
		// offer adds r if it fits; otherwise r starts the next batch.
		offer := func(r *appendReq) {
			b.m.queueDepth.Add(-1)
			switch {
			case r.state.Load() == reqCancelled:
			case !b.fits(bt, r):
				carry = r
			default:
				bt.add(r)
			}
		}
		stopped := func() {
			timer.Stop()
			b.failAll(bt.reqs, ErrClosed)
			if carry != nil {
				b.failAll([]*appendReq{carry}, ErrClosed)
			}
			b.drain()
		}
		timer.Reset(b.cfg.MaxDelay)
	collect:
		for carry == nil && !b.full(bt) {
			select { // take what is already queued
			case r := <-b.queue:
				offer(r)
				continue
			default:
			}
			if b.inFlight.Load() == 0 {
				break collect // nothing in flight, nothing waiting: go now
			}
			select {
			case r := <-b.queue:
				offer(r)
			case <-timer.C:
				break collect
			case <-b.idle: // a batch finished: check again
			case <-b.stop:
				stopped()
				return
			}
		}
		timer.Stop()
		// Wait for an in-flight slot, still collecting.
	slot:
		for {
			q := b.queue
			if carry != nil || b.full(bt) {
				q = nil
			}
			select {
			case b.slots <- struct{}{}:
				break slot
			case r := <-q:
				offer(r)
			case <-b.stop:
				stopped()
				return
			}
		}
		// The batch is final: requests cancelled until now are left out.
		taken := bt.reqs[:0]
		for _, r := range bt.reqs {
			if r.take() {
				taken = append(taken, r)
			}
		}
		if len(taken) == 0 {
			<-b.slots
			continue
		}
		bt.reqs = taken
		b.inFlight.Add(1)
		b.m.inFlight.Add(1)
		b.wg.Add(1)
		go b.propose(bt)
	}
}

// propose commits one batch and answers its waiters.
func (b *batcher) propose(bt *batch) {
	defer func() {
		<-b.slots
		b.inFlight.Add(-1)
		b.m.inFlight.Add(-1)
		select {
		case b.idle <- struct{}{}:
		default:
		}
		b.wg.Done()
	}()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	b.commit(ctx, bt.reqs)
}

// failAll answers with err the requests of reqs not cancelled yet.
func (b *batcher) failAll(reqs []*appendReq, err error) {
	for _, r := range reqs {
		if r.take() {
			r.done <- appendRes{err: err}
		}
	}
}

// drain fails everything still queued; called once stop is closed.
func (b *batcher) drain() {
	for {
		select {
		case r := <-b.queue:
			b.m.queueDepth.Add(-1)
			b.failAll([]*appendReq{r}, ErrClosed)
		default:
			return
		}
	}
}

// deliver answers reqs, which hold contiguous entries from first on.
func deliver(reqs []*appendReq, first uint64, err error) {
	for _, r := range reqs {
		if err != nil {
			r.done <- appendRes{err: err}
			continue
		}
		r.done <- appendRes{first: first}
		first += uint64(len(r.raws))
	}
}
