// One method per API route.

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/custos-eu/custos/keysvc/ledger"
)

// Health asks a node whether it is ready: it has a leader and serves. A
// node that is not answers with an *APIError, code CodeNotReady.
func (c *Client) Health(ctx context.Context) (Health, error) {
	return c.health(ctx, "")
}

// NodeHealth is Health of the node at endpoint (an API base URL, not
// necessarily one of the client's endpoints), without failover: how
// `custos status` checks each member.
func (c *Client) NodeHealth(ctx context.Context, endpoint string) (Health, error) {
	base, err := baseURL(endpoint)
	if err != nil {
		return Health{}, fmt.Errorf("client: endpoint %q: %w", endpoint, err)
	}
	return c.health(ctx, base)
}

func (c *Client) health(ctx context.Context, endpoint string) (Health, error) {
	var h Health
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/sys/health", endpoint: endpoint})
	if err != nil {
		return h, err
	}
	return h, resp.decode("health", &h)
}

// Cluster returns a node's view of the cluster: leader, members, log size.
func (c *Client) Cluster(ctx context.Context) (Status, error) {
	var s Status
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/sys/cluster"})
	if err != nil {
		return s, err
	}
	return s, resp.decode("cluster status", &s)
}

// Checkpoint returns the leader's latest signed checkpoint of the key-op
// log, as a signed note. It is not verified here: use
// ledger.VerifyCheckpoint with node keys you trust.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ledger/checkpoint", accept: "text/plain"})
	if err != nil {
		return nil, err
	}
	if len(resp.body) > ledger.MaxCheckpointSize {
		return nil, fmt.Errorf("custos api %s: checkpoint of %d bytes, over the limit", resp.endpoint, len(resp.body))
	}
	return resp.body, nil
}

// Entries returns up to limit log entries from index start, as canonical
// bytes (ledger.ParseEntry reads them). The node may return fewer than
// asked (it caps a page), and none when start is the log's size; limit <= 0
// asks for the node's default page. A start beyond the log's size is an
// *APIError with code CodeNotFound.
func (c *Client) Entries(ctx context.Context, start uint64, limit int) ([][]byte, error) {
	q := url.Values{"start": {strconv.FormatUint(start, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ledger/entries", query: q})
	if err != nil {
		return nil, err
	}
	var page Entries
	if err := resp.decode("entries", &page); err != nil {
		return nil, err
	}
	if page.Start != start {
		return nil, fmt.Errorf("custos api %s: entries: asked from %d, got a page from %d", resp.endpoint, start, page.Start)
	}
	if limit > 0 && len(page.Entries) > limit {
		return nil, fmt.Errorf("custos api %s: entries: asked for %d, got %d", resp.endpoint, limit, len(page.Entries))
	}
	return page.Entries, nil
}

// InclusionProof returns the proof that entry index is in the tree of the
// log's first size entries (index < size), for ledger.VerifyInclusion.
func (c *Client) InclusionProof(ctx context.Context, index, size uint64) (ledger.InclusionProof, error) {
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "size": {strconv.FormatUint(size, 10)}}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ledger/proof/inclusion", query: q})
	if err != nil {
		return ledger.InclusionProof{}, err
	}
	p, err := ledger.ParseInclusionProof(resp.body)
	if err != nil {
		return ledger.InclusionProof{}, fmt.Errorf("custos api %s: %w", resp.endpoint, err)
	}
	if p.Index != index || p.Size != size {
		return ledger.InclusionProof{}, fmt.Errorf("custos api %s: asked for the inclusion of %d in %d, got %d in %d", resp.endpoint, index, size, p.Index, p.Size)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of the first newSize
// entries extends that of the first oldSize, for ledger.VerifyConsistency.
func (c *Client) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) (ledger.ConsistencyProof, error) {
	q := url.Values{"old": {strconv.FormatUint(oldSize, 10)}, "new": {strconv.FormatUint(newSize, 10)}}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ledger/proof/consistency", query: q})
	if err != nil {
		return ledger.ConsistencyProof{}, err
	}
	p, err := ledger.ParseConsistencyProof(resp.body)
	if err != nil {
		return ledger.ConsistencyProof{}, fmt.Errorf("custos api %s: %w", resp.endpoint, err)
	}
	if p.Old != oldSize || p.New != newSize {
		return ledger.ConsistencyProof{}, fmt.Errorf("custos api %s: asked for consistency of %d with %d, got %d with %d", resp.endpoint, oldSize, newSize, p.Old, p.New)
	}
	return p, nil
}

// NodeKeys returns the checkpoint keys of every node the cluster has
// registered, removed ones included (their keys still verify what they
// signed). Keys fetched from the cluster itself show who signed; an auditor
// verifying independently keeps a trusted copy (ledger.ParseNodeKeys).
func (c *Client) NodeKeys(ctx context.Context) ([]ledger.NodeKey, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ledger/keys", accept: "text/plain"})
	if err != nil {
		return nil, err
	}
	keys, err := ledger.ParseNodeKeys(resp.body)
	if err != nil {
		return nil, fmt.Errorf("custos api %s: node keys: %w", resp.endpoint, err)
	}
	return keys, nil
}

// Canary appends a "sys.canary" entry attributed to the caller and returns
// its log index once a quorum committed it: the write-path probe. It needs
// an operator certificate. Any node serves it (followers forward to the
// leader). An *APIError with CodeNoQuorum means the outcome is unknown.
func (c *Client) Canary(ctx context.Context) (uint64, error) {
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sys/canary", body: []byte("{}")})
	if err != nil {
		return 0, err
	}
	var li LogIndex
	return li.LogIndex, resp.decode("canary", &li)
}

// Join asks the cluster's leader to add the calling node (its certificate
// must name node info.ID in info.Region, role node). It is idempotent: a
// node already registered with the same details joins again successfully.
func (c *Client) Join(ctx context.Context, info NodeInfo) (JoinResult, error) {
	body, err := json.Marshal(info)
	if err != nil {
		return JoinResult{}, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sys/join", body: body})
	if err != nil {
		return JoinResult{}, err
	}
	var jr JoinResult
	return jr, resp.decode("join", &jr)
}

// Init names the cluster's officers, quorum and default KEK threshold
// (operator certificate). It succeeds once; a second call is an *APIError
// with CodeConflict.
func (c *Client) Init(ctx context.Context, in InitRequest) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sys/init", body: body})
	if err != nil {
		return err
	}
	var li LogIndex
	return resp.decode("init", &li)
}

// Propose submits a proposal (officer certificate naming its proposer).
// A refusal is an *APIError whose code says why.
func (c *Client) Propose(ctx context.Context, pr ProposeRequest) (Ceremony, error) {
	return c.ceremonyPost(ctx, "/v1/ceremonies", pr)
}

// Approve submits an approval of proposal id (officer certificate naming
// ar.Officer). The answer is the ceremony afterwards: executed when this
// approval completed the quorum.
func (c *Client) Approve(ctx context.Context, id string, ar ApproveRequest) (Ceremony, error) {
	return c.ceremonyPost(ctx, "/v1/ceremonies/"+url.PathEscape(id)+"/approvals", ar)
}

func (c *Client) ceremonyPost(ctx context.Context, path string, v any) (Ceremony, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return Ceremony{}, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, body: body})
	if err != nil {
		return Ceremony{}, err
	}
	var cer Ceremony
	return cer, resp.decode("ceremony", &cer)
}

// Officers lists every officer ever recorded, with their key bundles.
func (c *Client) Officers(ctx context.Context) ([]Officer, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/officers"})
	if err != nil {
		return nil, err
	}
	var l Officers
	return l.Officers, resp.decode("officers", &l)
}

// Ceremonies lists every proposal the answering node knows.
func (c *Client) Ceremonies(ctx context.Context) ([]Ceremony, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ceremonies"})
	if err != nil {
		return nil, err
	}
	var l Ceremonies
	return l.Ceremonies, resp.decode("ceremonies", &l)
}

// Ceremony returns proposal id.
func (c *Client) Ceremony(ctx context.Context, id string) (Ceremony, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/ceremonies/" + url.PathEscape(id)})
	if err != nil {
		return Ceremony{}, err
	}
	var cer Ceremony
	return cer, resp.decode("ceremony", &cer)
}
