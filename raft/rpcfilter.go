// Binding raft RPCs to the connection they arrive on. hashicorp/raft believes the sender
// id and address an RPC claims; here each inbound frame is decoded first, its claims are
// checked against the certificate of the TLS connection, and only then are its exact
// bytes passed on to raft's NetworkTransport.

package raft

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/hashicorp/go-msgpack/v2/codec"
	hraft "github.com/hashicorp/raft"
)

// RPC type bytes of hashicorp/raft's NetworkTransport (net_transport.go): each inbound
// frame is this byte, then the msgpack-encoded request; an InstallSnapshot request is
// followed by Size bytes of snapshot data.
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

// filterBufSize is the read buffer of a filtered connection, as large as
// NetworkTransport's own so that pipelined AppendEntries arrive in few reads.
const filterBufSize = 256 << 10

// keepFrameBuf: a frame buffer larger than this is not kept for the next frame.
const keepFrameBuf = 1 << 20

// rpcClaim is the part of every raft request that says who sent it. msgpack encodes
// requests as maps keyed by field name (the embedded header inlined), so decoding a
// request into rpcClaim fills these fields and skips the rest.
type rpcClaim struct {
	hraft.RPCHeader
	Leader    []byte // AppendEntries, InstallSnapshot: the leader's address (deprecated field)
	Candidate []byte // RequestVote: the candidate's address (deprecated field)
	Size      int64  // InstallSnapshot: bytes of snapshot data after the request
}

// rpcGuard holds a node's checks of inbound RPCs and counts refusals. Its methods are
// safe for concurrent use.
type rpcGuard struct {
	log  *slog.Logger
	bind bool // Config.PeerID is set: claims must match the connection's node id
	// addrOf returns the address this node's latest configuration has for id.
	addrOf func(id string) (addr string, ok bool)
	// acceptSnapshot decides whether to install a snapshot sent by from.
	acceptSnapshot func(from string) error

	rejected        atomic.Uint64 // connections dropped for an RPC that failed a check
	snapshotRefused atomic.Uint64 // of which InstallSnapshot refused by acceptSnapshot
}

// rpcFilter is an inbound raft connection as NetworkTransport sees it: reads yield the
// peer's byte stream, frame by frame, each frame only after its claims were checked.
// Writes (responses) pass through. Like any net.Conn given to NetworkTransport, it is
// read by one goroutine.
type rpcFilter struct {
	*link
	g   *rpcGuard
	br  *bufio.Reader
	rec frameRecorder
	dec *codec.Decoder

	pending []byte // checked bytes not yet read
	raw     int64  // snapshot bytes to pass through unchecked after the pending frame
	okAddr  string // last address claim that passed the checks on this connection
}

func newRPCFilter(l *link, g *rpcGuard) *rpcFilter {
	f := &rpcFilter{link: l, g: g, br: bufio.NewReaderSize(l.Conn, filterBufSize)}
	f.rec.br = f.br
	// The decoder reads through the recorder one byte at a time or exactly as much as a
	// value needs (it uses the io.ByteScanner, never reading ahead), so after Decode the
	// recorder holds exactly the frame.
	f.dec = codec.NewDecoder(&f.rec, &codec.MsgpackHandle{})
	return f
}

// Read returns bytes of frames that passed the checks. On a frame that fails, it closes
// the connection and returns an error, so raft never sees that frame.
func (f *rpcFilter) Read(p []byte) (int, error) {
	for {
		if len(f.pending) > 0 {
			n := copy(p, f.pending)
			f.pending = f.pending[n:]
			return n, nil
		}
		if f.raw > 0 {
			if int64(len(p)) > f.raw {
				p = p[:f.raw]
			}
			n, err := f.br.Read(p)
			f.raw -= int64(n)
			return n, err
		}
		if err := f.next(); err != nil {
			return 0, err
		}
	}
}

// next reads, decodes and checks the next frame, leaving it in f.pending.
func (f *rpcFilter) next() error {
	if cap(f.rec.buf) > keepFrameBuf {
		f.rec.buf = nil
	}
	f.rec.buf = f.rec.buf[:0]
	t, err := f.rec.ReadByte()
	if err != nil {
		return err // io.EOF included: NetworkTransport ends the connection quietly
	}
	var claim rpcClaim
	if t > rpcRequestPreVote {
		return f.refuse(t, &claim, fmt.Errorf("unknown rpc type %d", t))
	}
	if err := f.dec.Decode(&claim); err != nil {
		return f.refuse(t, &claim, fmt.Errorf("decode: %w", err))
	}
	if err := f.check(t, &claim); err != nil {
		return f.refuse(t, &claim, err)
	}
	f.pending = f.rec.buf
	if t == rpcInstallSnapshot {
		f.raw = max(claim.Size, 0)
	}
	return nil
}

// errSnapshotRefused marks a refusal by acceptSnapshot, for counting.
var errSnapshotRefused = errors.New("snapshot refused")

// check verifies the claims of one request of type t.
func (f *rpcFilter) check(t uint8, c *rpcClaim) error {
	claimed := string(c.ID)
	if f.g.bind {
		if claimed != f.id {
			return fmt.Errorf("claims to be %q", claimed)
		}
		addrs := [2][]byte{c.Addr}
		switch t {
		case rpcAppendEntries, rpcInstallSnapshot:
			addrs[1] = c.Leader
		case rpcRequestVote:
			addrs[1] = c.Candidate
		}
		for _, a := range addrs {
			if len(a) == 0 || string(a) == f.okAddr {
				continue
			}
			if err := f.g.checkAddr(f.id, f.leaf, string(a)); err != nil {
				return err
			}
			f.okAddr = string(a)
		}
	}
	if t == rpcInstallSnapshot && f.g.acceptSnapshot != nil {
		if err := f.g.acceptSnapshot(claimed); err != nil {
			return fmt.Errorf("%w: %w", errSnapshotRefused, err)
		}
	}
	return nil
}

// checkAddr accepts addr as the address of node id, whose certificate is leaf, if the
// certificate names its host and this node's latest configuration, when it lists id,
// has id at addr.
func (g *rpcGuard) checkAddr(id string, leaf *x509.Certificate, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("claims address %q: %w", addr, err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("claims address %q not named by its certificate", addr)
	}
	if g.addrOf != nil {
		if want, ok := g.addrOf(id); ok && want != addr {
			return fmt.Errorf("claims address %q, configuration has %q", addr, want)
		}
	}
	return nil
}

// refuse counts and logs a refused frame and closes the connection.
func (f *rpcFilter) refuse(t uint8, c *rpcClaim, err error) error {
	f.g.rejected.Add(1)
	if errors.Is(err, errSnapshotRefused) {
		f.g.snapshotRefused.Add(1)
	}
	f.g.log.Warn("raft: dropped connection: rpc refused",
		"rpc", rpcName(t), "claimed_id", string(c.ID), "claimed_addr", string(c.Addr),
		"certified_id", f.id, "remote", f.RemoteAddr().String(), "err", err)
	f.link.Close()
	return fmt.Errorf("raft: %s from %q refused: %w", rpcName(t), f.id, err)
}

func rpcName(t uint8) string {
	switch t {
	case rpcAppendEntries:
		return "AppendEntries"
	case rpcRequestVote:
		return "RequestVote"
	case rpcInstallSnapshot:
		return "InstallSnapshot"
	case rpcTimeoutNow:
		return "TimeoutNow"
	case rpcRequestPreVote:
		return "RequestPreVote"
	}
	return fmt.Sprintf("rpc type %d", t)
}

// frameRecorder reads from br and keeps every byte read (and not unread) in buf.
type frameRecorder struct {
	br  *bufio.Reader
	buf []byte
}

func (r *frameRecorder) ReadByte() (byte, error) {
	b, err := r.br.ReadByte()
	if err == nil {
		r.buf = append(r.buf, b)
	}
	return b, err
}

func (r *frameRecorder) UnreadByte() error {
	err := r.br.UnreadByte()
	if err == nil {
		r.buf = r.buf[:len(r.buf)-1]
	}
	return err
}

func (r *frameRecorder) Read(p []byte) (int, error) {
	n, err := r.br.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}
