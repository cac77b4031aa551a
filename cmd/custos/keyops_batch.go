package main

// `custos wrap --batch FILE` and `custos unwrap --batch FILE`: many data
// keys in one command, through the API's batch routes (up to
// client.MaxBatchItems items a request; more are sent in several).
//
// The input is the API's items, as one JSON array or one JSON object a
// line (blank lines skipped): {"plaintext": BASE64, "context": {…}} to
// wrap, {"wrapped": BASE64, "context": {…}} to unwrap; an item without a
// context takes --context. The output is one JSON document (docs/cli.md):
// each item's result or error, in order, with its index. When any item
// failed the command names them on stderr and exits 1.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// maxBatchInput bounds a batch file: 100 full requests of 4 KiB keys.
const maxBatchInput = 64 << 20

// batchItem is one input item of a batch: Plaintext to wrap, or Wrapped
// to unwrap, and its context.
type batchItem struct {
	Plaintext []byte            `json:"plaintext,omitempty"`
	Wrapped   []byte            `json:"wrapped,omitempty"`
	Context   map[string]string `json:"context,omitempty"`
}

// batchResult is one item's outcome in the output of a batch.
type batchResult struct {
	Index      int               `json:"index"`
	Wrapped    []byte            `json:"wrapped,omitempty"`
	Plaintext  []byte            `json:"plaintext,omitempty"`
	KEKVersion uint32            `json:"kek_version,omitempty"`
	LogIndex   uint64            `json:"log_index,omitempty"`
	Error      *client.ItemError `json:"error,omitempty"`
}

// batchOutput is what a batch prints.
type batchOutput struct {
	KEK     string        `json:"kek"`
	Items   int           `json:"items"`
	Failed  []int         `json:"failed"`
	Results []batchResult `json:"results"`
}

// parseBatch parses a batch: one JSON array of items, or one JSON object
// a line. field is the item's data field ("plaintext" or "wrapped"),
// which every item must have; the other is refused.
func parseBatch(in []byte, field string) ([]batchItem, error) {
	var items []batchItem
	trimmed := bytes.TrimSpace(in)
	if bytes.HasPrefix(trimmed, []byte("[")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&items); err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		if dec.More() {
			return nil, errors.New("batch: data after the JSON array")
		}
	} else {
		for n, line := range bytes.Split(in, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			var it batchItem
			if err := dec.Decode(&it); err != nil {
				return nil, fmt.Errorf("batch line %d: %w", n+1, err)
			}
			if dec.More() {
				return nil, fmt.Errorf("batch line %d: more than one JSON object", n+1)
			}
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil, errors.New("batch: no items")
	}
	for i, it := range items {
		has, other := it.Plaintext, it.Wrapped
		otherName := "wrapped"
		if field == "wrapped" {
			has, other, otherName = it.Wrapped, it.Plaintext, "plaintext"
		}
		if len(has) == 0 {
			return nil, fmt.Errorf("batch item %d: no %q", i, field)
		}
		if len(other) != 0 {
			return nil, fmt.Errorf("batch item %d: %q does not belong in this batch (want %q)", i, otherName, field)
		}
	}
	return items, nil
}

func readBatch(s stdio, path, field string) ([]batchItem, error) {
	var r io.Reader = s.in
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxBatchInput+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("reading the batch: %w", err)
	}
	if len(b) > maxBatchInput {
		return nil, fmt.Errorf("the batch is over %d bytes", maxBatchInput)
	}
	return parseBatch(b, field)
}

// withContext returns an item's context c, or def when it has none.
func withContext(c, def map[string]string) map[string]string {
	if c == nil {
		return maps.Clone(def)
	}
	return c
}

// chunks calls f with the [lo, hi) ranges of n items, MaxBatchItems at most.
func chunks(n int, f func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += client.MaxBatchItems {
		if err := f(lo, min(lo+client.MaxBatchItems, n)); err != nil {
			return err
		}
	}
	return nil
}

func wrapBatch(ctx context.Context, s stdio, kf *keyOpFlags, path, out string) error {
	items, err := readBatch(s, path, "plaintext")
	if err != nil {
		return err
	}
	defer func() {
		for _, it := range items {
			clear(it.Plaintext)
		}
	}()
	cl, err := kf.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res := batchOutput{KEK: kf.kek, Items: len(items), Failed: []int{}}
	err = chunks(len(items), func(lo, hi int) error {
		req := make([]client.WrapItem, 0, hi-lo)
		for _, it := range items[lo:hi] {
			req = append(req, client.WrapItem{Plaintext: it.Plaintext, Context: withContext(it.Context, kf.context)})
		}
		r, err := cl.WrapBatch(ctx, kf.kek, req)
		if err != nil {
			return batchFailed(lo, hi, len(items), err)
		}
		if len(r.Results) != hi-lo {
			return fmt.Errorf("items %d to %d: the node answered %d results for %d items", lo, hi-1, len(r.Results), hi-lo)
		}
		for i, x := range r.Results {
			res.Results = append(res.Results, batchResult{Index: lo + i, Wrapped: x.Wrapped, KEKVersion: x.KEKVersion, LogIndex: x.LogIndex, Error: x.Error})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return finishBatch(s, out, &res, false)
}

func unwrapBatch(ctx context.Context, s stdio, kf *keyOpFlags, path, out string) error {
	items, err := readBatch(s, path, "wrapped")
	if err != nil {
		return err
	}
	kek := kf.kek
	if kek == "" {
		// The KEK the blobs name; the API's batch is of one KEK.
		for i, it := range items {
			b, err := wrapkey.Parse(it.Wrapped)
			if err != nil {
				return fmt.Errorf("batch item %d: the wrapped key does not parse (%v); give --kek ID to have the cluster judge it", i, err)
			}
			if kek != "" && b.KEKID != kek {
				return fmt.Errorf("batch item %d is of KEK %q, item 0 of %q: a batch is of one KEK (split it, or give --kek ID)", i, b.KEKID, kek)
			}
			kek = b.KEKID
		}
	}
	cl, err := kf.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res := batchOutput{KEK: kek, Items: len(items), Failed: []int{}}
	defer func() {
		for _, r := range res.Results {
			clear(r.Plaintext)
		}
	}()
	err = chunks(len(items), func(lo, hi int) error {
		req := make([]client.UnwrapItem, 0, hi-lo)
		for _, it := range items[lo:hi] {
			req = append(req, client.UnwrapItem{Wrapped: it.Wrapped, Context: withContext(it.Context, kf.context)})
		}
		r, err := cl.UnwrapBatch(ctx, kek, req)
		if err != nil {
			return batchFailed(lo, hi, len(items), err)
		}
		if len(r.Results) != hi-lo {
			return fmt.Errorf("items %d to %d: the node answered %d results for %d items", lo, hi-1, len(r.Results), hi-lo)
		}
		for i, x := range r.Results {
			res.Results = append(res.Results, batchResult{Index: lo + i, Plaintext: x.Plaintext, LogIndex: x.LogIndex, Error: x.Error})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return finishBatch(s, out, &res, true)
}

// batchFailed is the error of a batch request that failed as a whole.
func batchFailed(lo, hi, n int, err error) error {
	if lo == 0 && hi == n {
		return err
	}
	return fmt.Errorf("items %d to %d (of %d; the items before them are done but not printed): %w", lo, hi-1, n, err)
}

// finishBatch writes the results (to out, 0600 when they hold data keys,
// or stdout for "" or "-"), names the failed items on stderr and fails
// when there are any.
func finishBatch(s stdio, out string, res *batchOutput, secret bool) error {
	var failed []string
	for _, r := range res.Results {
		if r.Error != nil {
			res.Failed = append(res.Failed, r.Index)
			failed = append(failed, fmt.Sprintf("item %d: %s", r.Index, r.Error.Code))
		}
	}
	var b bytes.Buffer
	if err := printJSON(&b, res); err != nil {
		return err
	}
	defer clear(b.Bytes())
	var err error
	if out == "" || out == "-" {
		_, err = s.out.Write(b.Bytes())
	} else {
		err = writeFile(out, b.Bytes(), secret)
	}
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		for _, r := range res.Results {
			if r.Error != nil {
				fmt.Fprintf(s.err, "item %d: %v\n", r.Index, r.Error)
			}
		}
		return fmt.Errorf("%d of %d items failed (%s)", len(failed), res.Items, strings.Join(failed, ", "))
	}
	return nil
}
