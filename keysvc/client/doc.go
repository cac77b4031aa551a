// Package client is the Go SDK for a Custos cluster's HTTP API: what the
// custos CLI, the backup agent, auditors' tools and the nodes themselves
// (to join a cluster) use. It is a leaf: it imports only the identity and
// ledger leaf packages, never the node.
//
//	c, err := client.New(client.Config{
//		Endpoints: []string{"https://10.0.0.1:8200", "https://10.0.0.2:8200"},
//		TLSFiles:  identity.TLSFiles{Cert: "agent.pem", Key: "agent.key", CA: "ca.pem"},
//	})
//	defer c.Close()
//	st, err := c.Cluster(ctx)
//	w, err := c.Wrap(ctx, "payroll", dataKey, map[string]string{"dataset": "hr"})
//	u, err := c.Unwrap(ctx, "payroll", w.Wrapped, map[string]string{"dataset": "hr"})
//
// Key operations (Wrap, Unwrap, DataKey, Rewrap and the batches) may be
// served by any node; every answer carries the log index of its entry.
// Each call is signed (package reqsig, header Custos-Request-Signature)
// with the private key of the client certificate, which must be ECDSA
// P-256 or Ed25519: a fresh request id and the current time per call. The
// failover of a request that never left and the one leader redirect send
// the same signature (the same attempt); a new call is a new signature. A
// call whose request cannot be signed (an invalid KEK id or context) fails
// before anything is sent.
//
// # Connections
//
// A Client holds one http.Client whose keep-alive connections are reused by
// every call; it is safe for concurrent use, so share one. Every connection
// is mutual TLS 1.3 with the cluster CA (see identity.ClientConfig): the
// server must be a node of the cluster named in the client's certificate.
//
// # Endpoints, leaders and retries
//
// A call goes to the endpoint that last answered. If the exchange fails, it
// tries the next endpoint, and so on once around the list; but a write
// (POST) whose request was already sent (a connection reset after it, a
// timeout) may have been carried out, so it is not sent again: its error is
// returned. Reads are always tried again elsewhere. A node that is not the leader answers a
// leader-only request with 307 and the leader's API address in the
// Custos-Leader header (code [CodeNotLeader]); the client then sends the
// request to that leader, once. Nothing else is retried: a 503 such as
// [CodeNoQuorum] or [CodeNoLeader] is returned to the caller, who decides
// whether to wait and try again.
//
// # Errors
//
// A request the API refused returns an *[APIError] carrying the HTTP
// status, the stable snake_case code ([CodeNotLeader], [CodeForbidden], …),
// the message and the request id to quote to an operator; a refusal that
// was logged (a key operation or a ceremony) also carries the index of its
// denied entry (APIError.LogIndex). Transport
// failures are returned as they come from net/http, wrapped with the
// endpoint.
//
// # Wire shapes
//
// The JSON types here ([Health], [Status], [NodeInfo], …) are the API's
// response and request bodies; the node's handlers (package httpapi) encode
// these same types. Log entries travel as their canonical bytes in base64
// and proofs in the ledger package's JSON shapes.
package client
