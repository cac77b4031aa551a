// Package httpapi is a Custos node's HTTP API: a chi router, its handlers,
// the one mapping from errors to statuses and codes, and Prometheus
// metrics. Nodes talk to each other on the peer channel (keysvc/peer on the
// raft listener), never through this API.
//
//	h := httpapi.New(node, httpapi.Options{Logger: log})
//	srv := &http.Server{Handler: h, TLSConfig: serverTLS} // from identity.ServerConfig
//
// The handlers depend on [Service], the few node methods they call, so
// tests run them against a fake (package httpapitest).
//
// # Authentication
//
// The API is served only over mutual TLS with identity.ServerConfig: a
// client without a certificate from the cluster CA, or of another cluster,
// fails the handshake and never reaches a handler. Each request's caller is
// the identity in its verified certificate (identity.PeerIdentity); a
// request without one (plain HTTP, a misconfigured server) is answered 401
// unauthenticated. The caller is logged as the actor of any entry the
// request appends: identity URI, role, region, certificate fingerprint.
// A certificate revoked by ceremony (identity.revoke by fingerprint or
// identity, or the removal of its officer or node) is answered 403
// certificate_revoked on every route, reads included, as soon as the
// serving node has applied the revocation (Service.Revoked, checked on
// every request, so an open connection loses access too).
//
// # Routes
//
//	route                              roles                          answer
//	GET  /v1/sys/health                any                            200 {"status":"ok","node","leader"}; 503 not_ready
//	GET  /v1/sys/cluster               any                            200 client.Status
//	GET  /v1/ledger/checkpoint         any                            200 text/plain signed note (leader; see below)
//	GET  /v1/ledger/entries            auditor operator officer node  200 {"start":S,"entries":[base64…]}
//	     ?start=S (default 0) &limit=N (default 100, at most 1000; a page also stops past 4 MiB)
//	GET  /v1/ledger/proof/inclusion    any                            200 {"index","size","hashes"} (ledger.InclusionProof)
//	     ?index=I&size=N (I < N)
//	GET  /v1/ledger/proof/consistency  any                            200 {"old","new","hashes"} (ledger.ConsistencyProof)
//	     ?old=M&new=N (M <= N)
//	GET  /v1/ledger/keys               any                            200 text/plain: two verifier key lines per node
//	POST /v1/sys/canary                operator                       200 {"log_index":i}: a "sys.canary" entry, committed
//	POST /v1/attestations              agent operator                 200 {"log_index":i}: a backup.transfer, backup.drill or backup.prune entry
//	GET  /v1/attestations/drills       agent operator auditor officer 200 {"drills":[{"dataset","log_index","entry"}…]}
//	     ?dataset=NAME (optional): the newest backup.drill entry of each dataset, by dataset (leader)
//	POST /v1/sys/join                  node (name, region = body's)   200 {"node","leader"} (leader; see below)
//	POST /v1/sys/init                  operator                       200 {}: cluster.init, once (leader; see Ceremonies)
//	POST /v1/ceremonies                officer (the proposer)         200 client.Ceremony (leader)
//	POST /v1/ceremonies/{id}/approvals officer (the body's officer)   200 client.Ceremony (leader)
//	GET  /v1/ceremonies                officer auditor operator       200 {"ceremonies":[client.Ceremony…]}
//	GET  /v1/ceremonies/{id}           officer auditor operator       200 client.Ceremony; 404 unknown_proposal
//	GET  /v1/officers                  officer auditor operator       200 {"officers":[client.Officer…]} (key bundles)
//	GET  /v1/keks                      any                            200 {"keks":[client.KEK…]}
//	GET  /v1/keks/{id}                 any                            200 client.KEK; 404 unknown_kek
//	GET  /v1/keks/{id}/versions/{v}/destruction-certificate
//	                                   any                            200 client.DestructionCertificate; 409 not_destroyed
//	GET  /v1/keks/{id}/versions/{v}/public
//	                                   any                            200 {"kek_id","kek_version","public_key","state","log_index","entry"}
//	POST /v1/keks/{id}/wrap            any but node (policy decides)  200 {"wrapped","kek_version","log_index"}
//	POST /v1/keks/{id}/unwrap          any but node (policy decides)  200 {"plaintext","log_index"}
//	POST /v1/keks/{id}/datakey         any but node (policy decides)  200 {"plaintext"?,"wrapped","kek_version","log_index"}
//	POST /v1/keks/{id}/rewrap          any but node (policy decides)  200 {"wrapped","kek_version","log_index"}
//	POST /v1/keks/{id}/wrap/batch      any but node (policy decides)  200 {"results":[…]}: per item a result or {"error"}
//	POST /v1/keks/{id}/unwrap/batch    any but node (policy decides)  200 {"results":[…]}
//	GET  /v1/openapi.yaml              any                            the OpenAPI 3 document of the public routes
//	GET  /metrics                      operator auditor               Prometheus text
//
// Key operations are served by any node and answered only once their log
// entry committed (a batch is one entry); refusals are logged too, and
// their answer carries the denied entry's index in Custos-Log-Index.
// Unwrap, rewrap and unwrap batch must carry a Custos-Request-Signature
// header (package reqsig), signed with the TLS client certificate's key;
// wrap, datakey and wrap batch are checked when they carry one. The header
// is checked before the operation (codes request_signature_* 400/401,
// request_certificate_untrusted 403, request_replayed 409; no log entry)
// and keysvc gets the signed request in Caller.Signed.
//
// Entries travel as base64 of their canonical bytes, which JSON cannot
// alter (the ledger package explains why). Agents may not page through the
// log (it names other clients' operations); they may fetch checkpoints,
// proofs and keys to check their receipts.
//
// # Leader-only routes
//
// Checkpoint, join, init, proposals and approvals run on the leader. A follower
// answers them 307 Temporary Redirect to the same path and query on the
// leader, with the leader's API base URL in the Custos-Leader header (its
// id in Custos-Leader-Id) and an error body with code not_leader. It
// redirects rather than proxies so that the client talks to the leader
// under its own certificate (the leader sees and logs the real caller) and
// no node holds a request open on another's behalf; client.Client follows
// the redirect once, and curl does with -L. When no leader is known the
// answer is 503 no_leader. The canary is served by any node: a follower's
// keysvc forwards its append over the peer channel.
//
// # Ceremonies
//
// Init, proposals and approvals are leader-only and decided inside the
// state machine (package keysvc explains how); a refusal is logged as a
// denied entry and answered with its own code: the ceremony package's
// refusal codes, or not_initialized (409, before custos operator init; the
// ceremony routes all answer it then), not_proposer (403),
// proposal_exists (409), unknown_proposal (404); a KEK ceremony closed at
// execution carries one of the KEK refusal codes of docs/keks.md in its
// record. The certificate's name must be the proposal's proposer or the approval's officer. A signature in
// a proposal counts as the proposer's approval. An approval that completes
// the quorum executes the proposal in the same command: its answer is the
// ceremony with status executed, or refused with the execution's code (for
// example below_quorum, region_in_use). The routes are served when the
// Service also implements CeremonyService; otherwise they answer 501
// not_supported_yet.
//
// # Errors
//
// Every response carries a random Custos-Request-Id header; every error
// body is
//
//	{"error": {"code": "no_quorum", "message": "…", "request_id": "…"}}
//
// with one of the stable codes in package client: malformed_request and
// bad_request (400),
// unauthenticated (401), forbidden, certificate_revoked and
// region_not_allowed (403), not_found
// (404), method_not_allowed (405), conflict (409), too_large (413),
// rejected (422), internal (500), not_leader (307), no_leader, no_quorum,
// not_ready, not_bootstrapped, unavailable, canceled (503). classify is the
// only place statuses and codes are chosen. An internal error's message is
// generic; its cause (an HSM, bbolt or raft detail) is logged with the
// request id, never sent. no_quorum means the outcome is unknown and must
// be treated as a failure.
//
// Bodies are limited per route to the largest valid body the route can
// get, derived in bodylimits.go from the limits keysvc enforces on what
// it carries (data key and blob sizes, context bounds, batch items,
// proposal, signature, bundle and entry sizes, name and address lengths)
// as encoding/json writes them: canary 1 KiB, join 55022 bytes, init
// 525728, proposals 427106, approvals 33953, attestations 394624, wrap
// 31260, unwrap and rewrap 32884, datakey 25794, wrap batch 30263024,
// unwrap batch 31885024. Over the limit is 413 too_large.
//
// JSON bodies are strict (internal/strictjson): a body that is not one
// well-formed JSON object in valid UTF-8 (a syntax error, invalid UTF-8, a
// lone surrogate escape such as "\ud800", data after the object, none) is
// malformed_request, never decoded with U+FFFD in place of what the client
// sent; unknown fields and values of the wrong type are bad_request.
//
// A refused join (wrong role, or a certificate naming another node or
// region) is itself logged as a denied "node.join" entry, best effort;
// AddNode logs its own refusals.
//
// # Metrics
//
// custos_http_requests_total and custos_http_request_duration_seconds by
// route pattern, method and status; the node's keysvc.Metrics
// (custos_ledger_*, custos_state_*), raft gauges and the raft listener's
// refused connections (custos_raft_tls_*) read at scrape time; and, with the
// default registry, Go runtime and process metrics.
package httpapi
