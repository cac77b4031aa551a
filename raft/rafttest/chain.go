// Chain: a small deterministic state machine for tests.

package rafttest

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/custos-eu/custos/raft"
)

// ErrRejected is the application error Chain returns for commands starting with
// RejectPrefix.
var ErrRejected = errors.New("rafttest: command rejected")

// RejectPrefix marks a command that Chain rejects (deterministically) without changing
// its state.
const RejectPrefix = "reject:"

// Chain is an append-only list of distinct commands with a SHA-256 hash chain over
// them: Head = SHA-256(previous Head || command). A command already in the list is not
// appended again, so a proposer may retry a command whose outcome was unknown. Two
// Chains fed the same commands have the same Head. Apply returns the Head. It is safe
// for concurrent use.
type Chain struct {
	mu       sync.Mutex
	entries  [][]byte
	seen     map[string]bool
	head     [32]byte
	index    uint64 // last applied raft index
	restores int
}

var _ raft.StateMachine = (*Chain)(nil)

// NewChain returns an empty Chain.
func NewChain() *Chain { return &Chain{} }

// Apply appends cmd, unless already there, and returns the head; it returns ErrRejected
// for a command that starts with RejectPrefix. An index not above the last one applied
// is an error: raft applied an entry twice or out of order.
func (c *Chain) Apply(index uint64, cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if index <= c.index {
		return nil, fmt.Errorf("rafttest: index %d applied after %d", index, c.index)
	}
	c.index = index
	if strings.HasPrefix(string(cmd), RejectPrefix) {
		return nil, ErrRejected
	}
	if !c.seen[string(cmd)] {
		if c.seen == nil {
			c.seen = map[string]bool{}
		}
		c.seen[string(cmd)] = true
		c.entries = append(c.entries, append([]byte(nil), cmd...))
		c.head = sha256.Sum256(append(c.head[:], cmd...))
	}
	h := c.head
	return h[:], nil
}

// Head returns the current head of the hash chain.
func (c *Chain) Head() [32]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.head
}

// Len returns the number of commands appended.
func (c *Chain) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Entries returns a copy of the list of commands.
func (c *Chain) Entries() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.entries...)
}

// Contains reports whether cmd was appended.
func (c *Chain) Contains(cmd []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[string(cmd)]
}

// Restores returns how many times Restore has run.
func (c *Chain) Restores() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restores
}

// Snapshot captures the list as it is now; the list is append-only, so the prefix
// captured never changes.
func (c *Chain) Snapshot() (raft.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return chainSnapshot{entries: c.entries[:len(c.entries):len(c.entries)], head: c.head, index: c.index}, nil
}

// Restore replaces the state with a snapshot, checking its hash chain.
func (c *Chain) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	var hdr [8 + 8 + 32]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("rafttest: snapshot header: %w", err)
	}
	index := binary.BigEndian.Uint64(hdr[0:])
	count := binary.BigEndian.Uint64(hdr[8:])
	var want [32]byte
	copy(want[:], hdr[16:])
	var (
		entries [][]byte
		seen    = map[string]bool{}
		head    [32]byte
	)
	for i := uint64(0); i < count; i++ {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return fmt.Errorf("rafttest: snapshot entry %d: %w", i, err)
		}
		e := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(br, e); err != nil {
			return fmt.Errorf("rafttest: snapshot entry %d: %w", i, err)
		}
		entries = append(entries, e)
		seen[string(e)] = true
		head = sha256.Sum256(append(head[:], e...))
	}
	if head != want {
		return errors.New("rafttest: snapshot hash chain mismatch")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries, c.seen, c.head, c.index = entries, seen, head, index
	c.restores++
	return nil
}

type chainSnapshot struct {
	entries [][]byte
	head    [32]byte
	index   uint64
}

// WriteTo writes index, count and head, then each entry with a 4-byte length.
func (s chainSnapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var hdr [8 + 8 + 32]byte
	binary.BigEndian.PutUint64(hdr[0:], s.index)
	binary.BigEndian.PutUint64(hdr[8:], uint64(len(s.entries)))
	copy(hdr[16:], s.head[:])
	n, _ := bw.Write(hdr[:])
	total := int64(n)
	for _, e := range s.entries {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(e)))
		n1, _ := bw.Write(l[:])
		n2, _ := bw.Write(e)
		total += int64(n1 + n2)
	}
	return total, bw.Flush()
}

func (chainSnapshot) Release() {}
