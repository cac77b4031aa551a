// Folding of repeated denials: a client refused the same way again and
// again costs the log one entry per window, not one per request.

package keysvc

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/state"
)

// DefaultDenialFoldWindow is Config.DenialFoldWindow's default.
const DefaultDenialFoldWindow = time.Minute

// maxFolds bounds the windows open at once; past it, denials are logged
// one by one (the API's per-identity rate limits bound them anyway).
const maxFolds = 4096

// foldKey says when two denials are identical: same certificate, type, KEK
// version and reason. Details (a request id, a context hash) may differ.
type foldKey struct {
	identity, fingerprint, typ, kek, reason string
	version                                 uint32
}

func foldKeyOf(e ledger.Entry) foldKey {
	return foldKey{identity: e.Actor.Identity, fingerprint: e.Actor.CertFingerprint, typ: e.Type,
		kek: e.KEKID, reason: e.Reason, version: e.KEKVersion}
}

// foldWindow is one open window: its first denial was logged as entry
// index at opened; count identical ones followed, not yet logged.
type foldWindow struct {
	entry       ledger.Entry
	ready       chan struct{} // closed once the first is logged
	index       uint64
	opened      time.Time
	count       uint64
	first, last time.Time
	lastRID     string
}

// denialFolder logs denials through appendFn: the first of a window at
// once, the identical ones that follow within the window as one entry
// when it closes.
type denialFolder struct {
	appendFn func(context.Context, ledger.Entry) (uint64, error)
	window   time.Duration
	now      func() time.Time
	log      *slog.Logger
	folded   func(uint64) // counts denials folded (not logged one by one)

	mu      sync.Mutex
	open    map[foldKey]*foldWindow
	pending []ledger.Entry // folded entries whose append failed, retried
	stop    chan struct{}
	done    chan struct{}
}

func newDenialFolder(window time.Duration, now func() time.Time, log *slog.Logger,
	appendFn func(context.Context, ledger.Entry) (uint64, error), folded func(uint64)) *denialFolder {
	f := &denialFolder{appendFn: appendFn, window: window, now: now, log: log, folded: folded,
		open: make(map[foldKey]*foldWindow), stop: make(chan struct{}), done: make(chan struct{})}
	go f.loop()
	return f
}

// logDenial logs denial e (outcome denied) and returns the index of the
// entry that records it: its own, or, for a repeat within the window, the
// window's first (the folded entry that counts it is written when the
// window closes). A repeat that arrives while the window's first is being
// logged waits for it. An error means e is not logged: fail closed.
func (f *denialFolder) logDenial(ctx context.Context, e ledger.Entry) (uint64, error) {
	if f.window <= 0 {
		return f.appendFn(ctx, e)
	}
	k := foldKeyOf(e)
	for {
		now := f.now()
		f.mu.Lock()
		w := f.open[k]
		if w != nil && now.Sub(w.opened) < f.window {
			select {
			case <-w.ready: // its first is logged (a failed one leaves the map)
				if w.count == 0 {
					w.first = now
				}
				w.count++
				w.last, w.lastRID = now, e.RequestID
				f.mu.Unlock()
				f.folded(1)
				return w.index, nil
			default:
				f.mu.Unlock()
				select {
				case <-w.ready:
					continue
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
		}
		if w != nil && w.count > 0 {
			// Expired, not yet flushed by the loop: its fold goes out first.
			f.pending = append(f.pending, w.foldedEntry())
		}
		nw := &foldWindow{entry: e, opened: now, ready: make(chan struct{})}
		if w != nil || len(f.open) < maxFolds {
			f.open[k] = nw
		}
		f.mu.Unlock()
		i, err := f.appendFn(ctx, e)
		f.mu.Lock()
		nw.index = i
		if err != nil && f.open[k] == nw {
			delete(f.open, k)
		}
		close(nw.ready)
		f.mu.Unlock()
		return i, err
	}
}

// foldedEntry is the entry standing for w's folded denials.
func (w *foldWindow) foldedEntry() ledger.Entry {
	e := w.entry
	e.Details = maps.Clone(e.Details)
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details[ledger.DetailFoldCount] = strconv.FormatUint(w.count, 10)
	e.Details[ledger.DetailFoldFirst] = state.FormatTime(w.first)
	e.Details[ledger.DetailFoldLast] = state.FormatTime(w.last)
	e.Details[ledger.DetailFoldAfter] = strconv.FormatUint(w.index, 10)
	e.RequestID = w.lastRID
	e.Time = time.Time{}
	return e
}

// loop closes expired windows until stop, then flushes every window.
func (f *denialFolder) loop() {
	defer close(f.done)
	tick := time.NewTicker(max(min(f.window/8, time.Second), 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			f.flush(false)
		case <-f.stop:
			f.flush(true)
			return
		}
	}
}

// flush appends the folded entries of the windows that expired (all of
// them when closing), and those that failed before.
func (f *denialFolder) flush(all bool) {
	now := f.now()
	f.mu.Lock()
	out := f.pending
	f.pending = nil
	for k, w := range f.open {
		select {
		case <-w.ready:
		default:
			continue // its first is still being logged
		}
		if all || now.Sub(w.opened) >= f.window {
			if w.count > 0 {
				out = append(out, w.foldedEntry())
			}
			delete(f.open, k)
		}
	}
	f.mu.Unlock()
	var failed []ledger.Entry
	for _, e := range out {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := f.appendFn(ctx, e)
		cancel()
		var pe *ledger.ParseError
		if errors.As(err, &pe) { // never loggable: do not retry
			f.log.Error("keysvc: folded denials refused by the entry rules", slog.String("type", e.Type), slog.Any("err", err))
			continue
		}
		if err != nil {
			f.log.Warn("keysvc: could not log folded denials; retrying", slog.String("type", e.Type),
				slog.String("actor", e.Actor.Identity), slog.String("count", e.Details[ledger.DetailFoldCount]), slog.Any("err", err))
			failed = append(failed, e)
		}
	}
	if len(failed) > 0 && !all {
		f.mu.Lock()
		f.pending = append(failed, f.pending...)
		if len(f.pending) > maxFolds { // the log has been down for long: keep the newest
			f.pending = f.pending[len(f.pending)-maxFolds:]
		}
		f.mu.Unlock()
	}
}

// close flushes every open window and stops the loop.
func (f *denialFolder) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// LogDenial logs e, a refused request (outcome denied), folding it into the
// open window of an identical one (see Config.DenialFoldWindow). It returns
// the index of the entry that records it; an error means it is not logged.
func (n *Node) LogDenial(ctx context.Context, e ledger.Entry) (uint64, error) {
	if e.Outcome != ledger.OutcomeDenied {
		return 0, errors.New("keysvc: LogDenial of an entry that is not denied")
	}
	return n.denials.logDenial(ctx, e)
}
