// The read pipeline of Verify: one goroutine reads the pack, workers parse
// entries and hash their leaves in parallel, and Verify consumes the
// records strictly in pack order. Memory stays bounded: at most a few
// batches (each capped in entries and bytes) are in flight.

package audit

import (
	"io"
	"runtime"
	"sync"

	"github.com/custos-eu/custos/keysvc/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	batchEntries = 256       // entries per batch
	batchBytes   = 256 << 10 // entry bytes per batch
	inFlight     = 8         // batches between the reader and Verify
)

// item is one record of the pack; for an entry, the workers fill e, err
// and leaf.
type item struct {
	rec   Record // nil for an entry
	line  int
	index uint64
	off   int // the entry's bytes: batch.buf[off:off+n]
	n     int
	e     ledger.Entry
	err   error
	leaf  tlog.Hash
}

type batch struct {
	items []item
	buf   []byte
	end   error // after the items: io.EOF or the reader's error
	done  chan struct{}
}

func (b *batch) raw(it *item) []byte { return b.buf[it.off : it.off+it.n] }

var batchPool = sync.Pool{New: func() any {
	return &batch{items: make([]item, 0, batchEntries), buf: make([]byte, 0, batchBytes+64<<10)}
}}

func newBatch() *batch {
	b := batchPool.Get().(*batch)
	b.items, b.buf, b.end, b.done = b.items[:0], b.buf[:0], nil, make(chan struct{})
	return b
}

func freeBatch(b *batch) {
	for i := range b.items {
		b.items[i] = item{} // drop references to records and entries
	}
	batchPool.Put(b)
}

// pipeline streams a pack's records, in order, with entries parsed.
type pipeline struct {
	ordered chan *batch
	work    chan *batch
	quit    chan struct{}
	read    chan struct{} // closed when the reader goroutine has returned
	once    sync.Once
}

func startPipeline(r io.Reader) *pipeline {
	workers := runtime.GOMAXPROCS(0)
	p := &pipeline{ordered: make(chan *batch, inFlight), work: make(chan *batch, inFlight), quit: make(chan struct{}), read: make(chan struct{})}
	for range workers {
		go p.parse()
	}
	go p.readAll(NewReader(r))
	return p
}

// stop ends the pipeline early; the reading goroutine ends at its next
// record (or when its Read returns).
// stop ends the pipeline and returns once its reader has stopped reading
// r, so the caller may use r again (seek it, read the rest).
func (p *pipeline) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.read
}

func (p *pipeline) readAll(rd *Reader) {
	defer close(p.read)
	defer close(p.work)
	defer close(p.ordered)
	b := newBatch()
	send := func() bool {
		select {
		case p.work <- b:
		case <-p.quit:
			return false
		}
		select {
		case p.ordered <- b:
		case <-p.quit:
			return false
		}
		b = newBatch()
		return true
	}
	for {
		rec, err := rd.next()
		if err != nil {
			b.end = err
			send()
			return
		}
		e, isEntry := rec.(*EntryRecord)
		if !isEntry {
			b.items = append(b.items, item{rec: rec, line: rd.line})
			if !send() {
				return
			}
			continue
		}
		b.items = append(b.items, item{line: rd.line, index: e.Index, off: len(b.buf), n: len(e.Canonical)})
		b.buf = append(b.buf, e.Canonical...)
		if len(b.items) >= batchEntries || len(b.buf) >= batchBytes {
			if !send() {
				return
			}
		}
	}
}

func (p *pipeline) parse() {
	for b := range p.work {
		for i := range b.items {
			it := &b.items[i]
			if it.rec != nil {
				continue
			}
			raw := b.raw(it)
			if it.e, it.err = parseEntry(raw); it.err == nil {
				it.leaf = tlog.RecordHash(raw)
			}
		}
		close(b.done)
	}
}
