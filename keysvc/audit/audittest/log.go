// Package audittest is a fake key-op log for tests of what reads packs
// and logs (the custody report, the CLI's audit commands): a made-up
// cluster with one node, whose keys it holds, so it signs whatever
// checkpoints a test needs; and agents whose signed requests it logs.
package audittest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/reqsig"
)

// Start is the time of entry 0; entry i is i seconds later.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Log is a log of a made-up cluster with one node, n1.
type Log struct {
	Cluster string
	Name    string   // the node's checkpoint key name
	Keys    string   // the node's verifier key lines
	Entries [][]byte // canonical entries, Entries[i] of index i
	ec      *ecdsa.PrivateKey
	ml      *mldsa65.PrivateKey
	hashes  []tlog.Hash // stored hashes (tlog.StoredHashes)
}

// NewLog returns a log of cluster with n entries: the genesis, then canaries.
func NewLog(t testing.TB, cluster string, n int) *Log {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mlPub, ml, err := mldsa65.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &Log{Cluster: cluster, Name: ledger.KeyName(cluster, "n1"), ec: ec, ml: ml}
	kt, err := ledger.NodeKey{Name: f.Name, ECDSA: &ec.PublicKey, MLDSA: mlPub}.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	f.Keys = string(kt)
	f.Add(t, ledger.Entry{Type: ledger.TypeGenesis, Actor: ledger.Actor{Identity: "n1", Role: "node"}, Node: "n1", Outcome: ledger.OutcomeOK,
		Details: map[string]string{"cluster": cluster, "origin": ledger.Origin(cluster), "allowed_regions": "DE"}})
	f.Grow(t, n-1)
	return f
}

// Add appends e, numbered and stamped as the next entry.
func (f *Log) Add(t testing.TB, e ledger.Entry) {
	t.Helper()
	e.Index, e.Time = uint64(len(f.Entries)), Start.Add(time.Duration(len(f.Entries))*time.Second)
	raw, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hs, err := tlog.StoredHashes(int64(len(f.Entries)), raw, tlog.HashReaderFunc(f.Read))
	if err != nil {
		t.Fatal(err)
	}
	f.Entries = append(f.Entries, raw)
	f.hashes = append(f.hashes, hs...)
}

// Read is the log's tlog.HashReader.
func (f *Log) Read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = f.hashes[x]
	}
	return out, nil
}

// Grow appends n canaries.
func (f *Log) Grow(t testing.TB, n int) {
	for range n {
		f.Add(t, ledger.Entry{Type: ledger.TypeCanary, Actor: ledger.Actor{Identity: "ops", Role: "operator"}, Outcome: ledger.OutcomeOK})
	}
}

// Checkpoint signs the tree of its first size entries (or, with root
// set, a made-up root).
func (f *Log) Checkpoint(t testing.TB, size int, root *tlog.Hash) []byte {
	t.Helper()
	h, err := tlog.TreeHash(int64(size), tlog.HashReaderFunc(f.Read))
	if err != nil {
		t.Fatal(err)
	}
	if root != nil {
		h = *root
	}
	note, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: ledger.Origin(f.Cluster), Size: uint64(size), Hash: h}, f.Name, f.ec, f.ml)
	if err != nil {
		t.Fatal(err)
	}
	return note
}

// Trust is a trust file (encoded) pinning the tree of size entries.
func (f *Log) Trust(t testing.TB, size int) []byte {
	t.Helper()
	proof, err := tlog.ProveRecord(int64(size), 0, tlog.HashReaderFunc(f.Read))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := audit.NewTrust(f.Cluster, f.Entries[0], proof, f.Keys, f.Checkpoint(t, size, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ConsistencyProof proves the tree of newSize entries extends that of oldSize.
func (f *Log) ConsistencyProof(_ context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error) {
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), tlog.HashReaderFunc(f.Read))
	return ledger.ConsistencyProof{Old: oldSize, New: newSize, Hashes: p}, err
}

// Client is an agent's certificate and key in a log's cluster.
type Client struct {
	ID   identity.Identity
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewClient issues agent name of cluster (region DE) a certificate.
func NewClient(t testing.TB, cluster, name string) *Client {
	t.Helper()
	ca, err := identity.NewCA(cluster, 2*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Cluster: cluster, Name: name, Role: identity.RoleAgent, Region: "DE"}
	certPEM, keyPEM, err := ca.Issue(id, identity.IssueOptions{NotBefore: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{ID: id, Cert: pair.Leaf, Key: pair.PrivateKey.(crypto.Signer)}
}

// Activate appends a kek.activate of kek "backups" v1 served by n1 for c's
// signed unwrap request, and returns its index and request id.
func (f *Log) Activate(t testing.TB, c *Client) (uint64, string) {
	t.Helper()
	i := uint64(len(f.Entries))
	at := Start.Add(time.Duration(i) * time.Second) // as Add stamps it
	req := reqsig.Request{Cluster: f.Cluster, Op: reqsig.OpUnwrap, KEKID: "backups", Version: 1, Body: reqsig.BodyHash([]byte("blob")),
		RequestID: reqsig.NewRequestID(), Time: at.Unix()}
	msg, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := reqsig.Sign(c.Key, msg)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	f.Add(t, ledger.Entry{Type: ledger.TypeActivate,
		Actor: ledger.Actor{Identity: c.ID.String(), Role: string(c.ID.Role), Region: c.ID.Region, CertFingerprint: identity.Fingerprint(c.Cert)},
		Node:  "n1", KEKID: "backups", KEKVersion: 1, RequestID: req.RequestID, Outcome: ledger.OutcomeOK,
		Details: map[string]string{"request": b64(msg), "signature": b64(sig), "client_cert": b64(c.Cert.Raw), "ttl_seconds": "60"}})
	return i, req.RequestID
}

// Release appends node's kek.release to n1 for activation act ("" for
// none) and returns its index.
func (f *Log) Release(t testing.TB, node, act, requestID string, c *Client) uint64 {
	t.Helper()
	d := map[string]string{"to": "n1", "for": c.ID.String()}
	if act != "" {
		d["activation"] = act
	}
	f.Add(t, ledger.Entry{Type: ledger.TypeRelease, Actor: ledger.Actor{Identity: "custos://" + f.Cluster + "/node/" + node + "?region=DE", Role: "node", Region: "DE"},
		Node: node, KEKID: "backups", KEKVersion: 1, RequestID: requestID, Outcome: ledger.OutcomeOK, Details: d})
	return uint64(len(f.Entries) - 1)
}

// RegisterNode appends the node.add of n1 with the log's keys, which a
// pack needs to verify (the node that signs its checkpoints).
func (f *Log) RegisterNode(t testing.TB) {
	t.Helper()
	h := sha256.Sum256([]byte(f.Keys))
	f.Add(t, ledger.Entry{Type: ledger.TypeNodeAdd, Actor: ledger.Actor{Identity: "n1", Role: "node"}, Node: "n1", Outcome: ledger.OutcomeOK,
		Details: map[string]string{"node.id": "n1", "node.keys_sha256": hex.EncodeToString(h[:])}})
}

// Pack is an evidence pack of entries [from, len(Entries)) with the
// log's node keys and a checkpoint of them all; from > 0 adds the
// frontier, and the consistency proof from pinned (a trust file's size).
// edit, if set, may change an entry's bytes as they are written.
func (f *Log) Pack(t testing.TB, from, pinned int, edit func(i int, raw []byte) []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	to := uint64(len(f.Entries))
	w, err := audit.NewWriter(&b, audit.Header{Format: audit.Format, Cluster: f.Cluster, Origin: ledger.Origin(f.Cluster),
		From: uint64(from), To: to, Created: Start.Add(time.Duration(to) * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(w.NodeKeys(f.Keys))
	if from > 0 {
		tr, err := audit.NewTreeFromFrontier(0, nil)
		check(err)
		for _, e := range f.Entries[:from] {
			tr.Add(tlog.RecordHash(e))
		}
		check(w.Frontier(uint64(from), tr.Frontier()))
	}
	for i := from; i < len(f.Entries); i++ {
		raw := f.Entries[i]
		if edit != nil {
			raw = edit(i, raw)
		}
		check(w.Entry(uint64(i), raw))
	}
	check(w.Checkpoint(f.Checkpoint(t, len(f.Entries), nil)))
	if from > 0 {
		p, err := f.ConsistencyProof(context.Background(), uint64(pinned), to)
		check(err)
		check(w.Consistency(uint64(pinned), to, p.Hashes))
	}
	check(w.Close())
	return b.Bytes()
}
