package main

// `custos wrap | unwrap | datakey`: the agent's key operations from the
// shell, with the API flags of every command (an agent's certificate: the
// DIR/env of `custos dev up` exports one).
//
// Formats:
//   - a data key (plaintext) is raw bytes, in and out;
//   - a wrapped key written to a file (--out, --out-wrapped) is the raw blob
//     (keysvc/wrapkey/FORMAT.md); written to stdout it is base64 (standard
//     alphabet, padded) with a trailing newline; unwrap reads either form;
//   - the log receipt (KEK version, log entry index) goes to stderr.
//
// A data key is never written to a terminal unless asked with an explicit
// --out - (or --out-plaintext -); files holding one are created 0600.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// maxKeyOpInput bounds what wrap and unwrap read (a data key is at most
// wrapkey.MaxDEKSize bytes, a blob a few KiB): more is refused, not sent.
const maxKeyOpInput = 1 << 20

// contextFlag is --context k=v,k2=v2, repeatable; values cannot hold commas.
type contextFlag map[string]string

func (c contextFlag) String() string {
	var kv []string
	for k, v := range c {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

func (c contextFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: want key=value", kv)
		}
		if _, dup := c[k]; dup {
			return fmt.Errorf("context key %q given twice", k)
		}
		c[k] = v
	}
	return nil
}

// keyOpFlags are the flags every key operation takes.
type keyOpFlags struct {
	api     *apiFlags
	kek     string
	context contextFlag
}

func addKeyOpFlags(fs *flag.FlagSet, s stdio, kekUsage string) *keyOpFlags {
	fs.SetOutput(s.err)
	kf := &keyOpFlags{api: addAPIFlags(fs), context: contextFlag{}}
	fs.StringVar(&kf.kek, "kek", "", kekUsage)
	fs.Var(kf.context, "context", "the context the key is bound to: key=value pairs, comma-separated, or the flag repeated; unwrap needs exactly the context wrap was given")
	return kf
}

// isTerminal reports whether f is an *os.File on a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// readInput reads path ("-" or "": stdin), at most maxKeyOpInput bytes.
// A data key (secret) is not read from a terminal unless asked with --in -.
func readInput(s stdio, path, what string, secret bool) ([]byte, error) {
	var r io.Reader
	switch path {
	case "", "-":
		if path == "" && secret && isTerminal(s.in) {
			return nil, fmt.Errorf("stdin is a terminal: give the %s with --in FILE or on a pipe (--in - reads it from the terminal all the same)", what)
		}
		r = s.in
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyOpInput+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	if len(b) > maxKeyOpInput {
		clear(b)
		return nil, fmt.Errorf("the %s is over %d bytes", what, maxKeyOpInput)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("no %s (empty input)", what)
	}
	return b, nil
}

// writeFile writes b to path: 0600 for a secret, else 0644. A secret's
// file is made 0600 even if it existed with other permissions.
func writeFile(path string, b []byte, secret bool) error {
	perm := os.FileMode(0o644)
	if secret {
		perm = 0o600
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if secret {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeWrapped writes a wrapped key: the raw blob to path, base64 and a
// newline to stdout for "" or "-".
func writeWrapped(s stdio, path string, blob []byte) error {
	if path == "" || path == "-" {
		_, err := fmt.Fprintln(s.out, base64.StdEncoding.EncodeToString(blob))
		return err
	}
	return writeFile(path, blob, false)
}

// plaintextDest checks where a data key may go: a file, stdout when asked
// with "-", or stdout by default ("") unless it is a terminal.
func plaintextDest(s stdio, path, flagName string) error {
	if path == "" && isTerminal(s.out) {
		return fmt.Errorf("stdout is a terminal: not printing a data key there; give %s FILE, redirect stdout, or %s - to print it all the same", flagName, flagName)
	}
	return nil
}

// writePlaintext writes a data key, raw: to path, or stdout for "" or "-".
func writePlaintext(s stdio, path string, key []byte) error {
	if path == "" || path == "-" {
		_, err := s.out.Write(key)
		return err
	}
	return writeFile(path, key, true)
}

// parseWrapped accepts a wrapped key as wrap writes it: the raw blob, or
// its base64 (surrounding white space ignored).
func parseWrapped(in []byte) ([]byte, error) {
	if bytes.HasPrefix(in, []byte(wrapkey.Magic)) {
		return in, nil
	}
	text := bytes.Join(bytes.Fields(in), nil)
	blob := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(blob, text)
	if err != nil {
		return nil, errors.New("the input is neither a wrapped key nor its base64 (as custos wrap writes them)")
	}
	return blob[:n], nil
}

func noArgs(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}

func runWrap(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("wrap", flag.ContinueOnError)
	kf := addKeyOpFlags(fs, s, "the KEK to wrap with (required); its latest active version wraps")
	in := fs.String("in", "", "the data key, raw bytes (default: stdin, unless a terminal; - : stdin all the same)")
	out := fs.String("out", "", "write the wrapped key, the raw blob, to this file (default, or -: base64 and a newline on stdout); with --batch, the results")
	batchFile := fs.String("batch", "", "wrap a batch: items {\"plaintext\": BASE64, \"context\": {…}} from this file (- : stdin), one JSON array or one object a line; results as JSON (docs/cli.md)")
	format := addFormatFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if kf.kek == "" {
		return usagef("--kek ID is required")
	}
	if *batchFile != "" {
		if *in != "" {
			return usagef("--batch FILE holds the data keys: drop --in")
		}
		return wrapBatch(ctx, s, kf, *batchFile, *out)
	}
	key, err := readInput(s, *in, "data key", true)
	if err != nil {
		return err
	}
	defer clear(key)
	cl, err := kf.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := cl.Wrap(ctx, kf.kek, key, kf.context)
	if err != nil {
		return err
	}
	if format.json {
		r := keyOpJSON{KEK: kf.kek, KEKVersion: res.KEKVersion, LogIndex: res.LogIndex, Bytes: len(key)}
		if err := r.wrappedTo(s, *out, res.Wrapped); err != nil {
			return err
		}
		return printJSON(s.out, r)
	}
	if err := writeWrapped(s, *out, res.Wrapped); err != nil {
		return err
	}
	fmt.Fprintf(s.err, "wrapped %d-byte data key with KEK %q version %d; receipt: log entry %d\n", len(key), kf.kek, res.KEKVersion, res.LogIndex)
	return nil
}

func runUnwrap(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("unwrap", flag.ContinueOnError)
	kf := addKeyOpFlags(fs, s, "the KEK to unwrap with (default: the one the wrapped key names)")
	in := fs.String("in", "", "the wrapped key, raw or base64 as custos wrap writes it (default, or -: stdin)")
	out := fs.String("out", "", "write the data key, raw bytes, to this file, created 0600 (default: stdout unless a terminal; -: stdout all the same); with --batch, the results")
	batchFile := fs.String("batch", "", "unwrap a batch: items {\"wrapped\": BASE64, \"context\": {…}} from this file (- : stdin), one JSON array or one object a line; results, with the data keys, as JSON (docs/cli.md)")
	format := addFormatFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if err := plaintextDest(s, *out, "--out"); err != nil {
		return err
	}
	if *batchFile != "" {
		if *in != "" {
			return usagef("--batch FILE holds the wrapped keys: drop --in")
		}
		return unwrapBatch(ctx, s, kf, *batchFile, *out)
	}
	if format.json && (*out == "" || *out == "-") {
		return usagef("--format json prints the receipt on stdout: give --out FILE for the data key")
	}
	blob, kekID, v, err := readWrapped(s, *in, kf.kek)
	if err != nil {
		return err
	}
	version := ""
	if v != 0 {
		version = fmt.Sprintf(" version %d", v)
	}
	cl, err := kf.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := cl.Unwrap(ctx, kekID, blob, kf.context)
	if err != nil {
		return err
	}
	defer clear(res.Plaintext)
	if err := writePlaintext(s, *out, res.Plaintext); err != nil {
		return err
	}
	if format.json {
		return printJSON(s.out, keyOpJSON{KEK: kekID, KEKVersion: v, LogIndex: res.LogIndex, Bytes: len(res.Plaintext), Out: *out})
	}
	fmt.Fprintf(s.err, "unwrapped %d-byte data key with KEK %q%s; receipt: log entry %d\n", len(res.Plaintext), kekID, version, res.LogIndex)
	return nil
}

func runDataKey(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("datakey", flag.ContinueOnError)
	kf := addKeyOpFlags(fs, s, "the KEK to wrap the new data key with (required)")
	wrappedOnly := fs.Bool("wrapped-only", false, "ask only for the wrapped form: the data key never leaves the cluster now (unwrap it when needed)")
	outWrapped := fs.String("out-wrapped", "", "write the wrapped key, the raw blob, to this file (default, or -: base64 and a newline on stdout)")
	outPlain := fs.String("out-plaintext", "", "write the data key, 32 raw bytes, to this file, created 0600, or - for stdout (required unless --wrapped-only)")
	format := addFormatFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	switch {
	case format.json && *outPlain == "-":
		return usagef("--format json prints the receipt on stdout: give --out-plaintext FILE for the data key")
	case kf.kek == "":
		return usagef("--kek ID is required")
	case *wrappedOnly && *outPlain != "":
		return usagef("--wrapped-only asks for no data key: drop --out-plaintext")
	case !*wrappedOnly && *outPlain == "":
		return usagef("where should the data key go? give --out-plaintext FILE (or - for stdout), or --wrapped-only")
	case *outPlain == "-" && (*outWrapped == "" || *outWrapped == "-"):
		return usagef("--out-plaintext - takes stdout: give --out-wrapped FILE for the wrapped key")
	case *outPlain != "" && *outPlain != "-" && *outPlain == *outWrapped:
		return usagef("--out-plaintext and --out-wrapped name the same file")
	}
	cl, err := kf.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := cl.DataKey(ctx, kf.kek, kf.context, *wrappedOnly)
	if err != nil {
		return err
	}
	defer clear(res.Plaintext)
	r := keyOpJSON{KEK: kf.kek, KEKVersion: res.KEKVersion, LogIndex: res.LogIndex, Out: *outPlain}
	if format.json {
		err = r.wrappedTo(s, *outWrapped, res.Wrapped)
	} else {
		err = writeWrapped(s, *outWrapped, res.Wrapped)
	}
	if err != nil {
		return err
	}
	what := "wrapped-only data key"
	if !*wrappedOnly {
		if len(res.Plaintext) == 0 {
			return errors.New("the node sent no data key")
		}
		if err := writePlaintext(s, *outPlain, res.Plaintext); err != nil {
			return err
		}
		what = fmt.Sprintf("%d-byte data key", len(res.Plaintext))
		r.Bytes = len(res.Plaintext)
	}
	if format.json {
		return printJSON(s.out, r)
	}
	fmt.Fprintf(s.err, "new %s wrapped with KEK %q version %d; receipt: log entry %d\n", what, kf.kek, res.KEKVersion, res.LogIndex)
	return nil
}

// readWrapped reads a wrapped key from in (raw or base64) and returns it
// with the KEK it is for (kek, or the one it names) and its version.
func readWrapped(s stdio, in, kek string) (blob []byte, kekID string, version uint32, err error) {
	raw, err := readInput(s, in, "wrapped key", false)
	if err != nil {
		return nil, "", 0, err
	}
	if blob, err = parseWrapped(raw); err != nil {
		return nil, "", 0, err
	}
	kekID, version, err = blobKEK(kek, blob)
	return blob, kekID, version, err
}

func runRewrap(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("rewrap", flag.ContinueOnError)
	kf := addKeyOpFlags(fs, s, "the KEK of the wrapped key (default: the one it names); it is rewrapped to that KEK's latest active version")
	in := fs.String("in", "", "the wrapped key, raw or base64 as custos wrap writes it (default, or -: stdin)")
	out := fs.String("out", "", "write the rewrapped key, the raw blob, to this file (default, or -: base64 and a newline on stdout)")
	format := addFormatFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	blob, kekID, from, err := readWrapped(s, *in, kf.kek)
	if err != nil {
		return err
	}
	cl, err := kf.api.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := cl.Rewrap(ctx, kekID, blob, kf.context)
	if err != nil {
		return err
	}
	if format.json {
		r := keyOpJSON{KEK: kekID, FromVersion: from, KEKVersion: res.KEKVersion, LogIndex: res.LogIndex}
		if err := r.wrappedTo(s, *out, res.Wrapped); err != nil {
			return err
		}
		return printJSON(s.out, r)
	}
	if err := writeWrapped(s, *out, res.Wrapped); err != nil {
		return err
	}
	fromText := ""
	if from != 0 {
		fromText = fmt.Sprintf(" from version %d", from)
	}
	fmt.Fprintf(s.err, "rewrapped a data key of KEK %q%s to version %d; receipt: log entry %d\n", kekID, fromText, res.KEKVersion, res.LogIndex)
	return nil
}

// blobKEK returns the KEK to send a wrapped key to, kek or else the one
// the blob names, and the version the blob names (0 if it does not parse).
func blobKEK(kek string, blob []byte) (string, uint32, error) {
	b, err := wrapkey.Parse(blob)
	if err != nil {
		if kek == "" {
			return "", 0, fmt.Errorf("the wrapped key does not parse (%v); give --kek ID to have the cluster judge it", err)
		}
		return kek, 0, nil
	}
	if kek == "" {
		kek = b.KEKID
	}
	return kek, b.KEKVersion, nil
}

// keyOpJSON is the receipt of wrap, unwrap, datakey and rewrap with
// --format json: the KEK and version, the log entry that records the
// operation, the data key's size and where the outputs went. Wrapped is
// the wrapped key (base64 in JSON) when it was not written to a file.
type keyOpJSON struct {
	KEK         string `json:"kek"`
	FromVersion uint32 `json:"from_version,omitempty"`
	KEKVersion  uint32 `json:"kek_version,omitempty"`
	LogIndex    uint64 `json:"log_index"`
	Bytes       int    `json:"bytes,omitempty"`
	Wrapped     []byte `json:"wrapped,omitempty"`
	WrappedOut  string `json:"wrapped_out,omitempty"`
	Out         string `json:"out,omitempty"`
}

// wrappedTo writes blob to path, or keeps it for the JSON for "" or "-".
func (r *keyOpJSON) wrappedTo(s stdio, path string, blob []byte) error {
	if path == "" || path == "-" {
		r.Wrapped = blob
		return nil
	}
	r.WrappedOut = path
	return writeFile(path, blob, false)
}
