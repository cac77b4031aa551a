// The daemon's life: open token, TLS (its key in the token) and node; serve; bootstrap or join;
// shut down in order.

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/internal/buildinfo"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/errcode"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/nodetls"
)

// Bounds of the daemon's waits.
const (
	shutdownTimeout = 10 * time.Second // in-flight API requests at shutdown
	joinMinBackoff  = 500 * time.Millisecond
	joinMaxBackoff  = 15 * time.Second
	joinAttempt     = 30 * time.Second // one join request (AddNode waits for a quorum)
)

func loadConfig(path string) (*nodecfg.Config, error) {
	return nodecfg.Load(path)
}

// daemon runs the node described by cfg until ctx ends (a signal) or a
// fatal error.
// With describe set, it prints the node's description there and returns
// once the node's keys exist, without serving or joining.
func daemon(ctx context.Context, cfg *nodecfg.Config, log *slog.Logger, describe io.Writer) (err error) {
	build := buildinfo.Read()
	log.Info("custosd: starting", slog.Any("config", cfg), slog.String("go", build.GoVersion), slog.String("version", build.Version),
		slog.String("revision", build.Revision), slog.Bool("modified", build.Modified))

	// The token first: the node's TLS key lives there. Every use of it,
	// TLS handshakes included, is measured (custos_hsm_*).
	rawTok, err := openToken(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rawTok.Close(); cerr != nil {
			log.Warn("custosd: closing the HSM token", slog.Any("err", cerr))
		}
	}()
	hsmM := newHSMMetrics()
	tok := hsmM.wrap(rawTok, cfg.HSM.TokenLabel)
	signer, err := tok.Signer(nodetls.LabelTLS)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return &configError{fmt.Errorf("tls: the HSM token %q holds no node TLS key (%s): run `custosd -config FILE -csr` "+
			"to make it and a certificate request, and have the cluster CA sign the request into %s", cfg.HSM.TokenLabel, nodetls.LabelTLS, cfg.TLS.Cert)}
	}
	if err != nil {
		return fmt.Errorf("tls: node TLS key: %w", err)
	}
	files := identity.TLSFiles{Cert: cfg.TLS.Cert, CA: cfg.TLS.CA, Signer: signer}
	serverTLS, err := identity.ServerConfig(files)
	if err != nil {
		return &configError{fmt.Errorf("tls: %w", err)}
	}
	clientTLS, err := identity.ClientConfig(files)
	if err != nil {
		return &configError{fmt.Errorf("tls (as a client of other nodes): %w", err)}
	}

	kcfg := keysvc.Config{
		NodeID: cfg.NodeID, Region: cfg.Region, Cluster: cfg.Cluster, DataDir: cfg.DataDir,
		RaftBind: cfg.Raft.Listen, RaftAdvertise: cfg.Raft.Advertise,
		APIAdvertise:     "https://" + cfg.API.Advertise,
		Certificate:      serverTLS.Certificates[0],
		CAs:              serverTLS.ClientCAs,
		Token:            tok,
		AllowedRegions:   cfg.AllowedRegions,
		DenialFoldWindow: cfg.RateLimits.DenialFoldWindow.Duration,
		GroupCommit: keysvc.GroupCommit{
			MaxEntries: cfg.GroupCommit.MaxEntries, MaxBytes: cfg.GroupCommit.MaxBytes, MaxDelay: cfg.GroupCommit.MaxDelay.Duration,
		},
		Raft: keysvc.RaftTuning{
			HeartbeatTimeout:  cfg.RaftTuning.HeartbeatTimeout.Duration,
			ElectionTimeout:   cfg.RaftTuning.ElectionTimeout.Duration,
			SnapshotInterval:  cfg.RaftTuning.SnapshotInterval.Duration,
			SnapshotThreshold: cfg.RaftTuning.SnapshotThreshold,
			TrailingLogs:      cfg.RaftTuning.TrailingLogs,

			FirstBytesTimeout:  cfg.Raft.FirstBytesTimeout.Duration,
			MaxHandshakesPerIP: cfg.Raft.MaxHandshakesPerIP,
		},
		Logger: log,
	}
	if err := kcfg.Validate(); err != nil {
		return &configError{err}
	}
	node, err := keysvc.Open(kcfg)
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			log.Warn("custosd: closing the node", slog.Any("err", cerr))
		}
	}()
	if describe != nil {
		desc, err := json.MarshalIndent(client.NodeInfo(node.Info()), "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(describe, "%s\n", desc)
		return err
	}
	// Node-to-node calls use the peer channel on the raft listener, which
	// keysvc.Open set up: the API port carries none of them.

	ln, err := listenAPI(cfg.API)
	if err != nil {
		return err
	}
	// No Options.ClientCAs: request signatures are checked against the root
	// that verified the connection (serverTLS.ClientCAs), so the handshake's
	// chain check serves them and is not done twice.
	leaf, err := leafOf(serverTLS.Certificates[0])
	if err != nil {
		return &configError{fmt.Errorf("tls.cert: %w", err)}
	}
	certs, err := newCertExpiry(leaf, cfg.TLS.CA, time.Now)
	if err != nil {
		return &configError{err}
	}
	reg := apiRegistry(ln)
	reg.MustRegister(hsmM, buildInfoMetric(build), certs, newShareHealth(node, tok))
	handler := httpapi.New(node, httpapi.Options{Logger: log, Registry: reg, RateLimits: rateLimits(cfg.RateLimits)})
	srv := apiServer(cfg.API, handler, serverTLS, log)
	fatal := make(chan error, 3)
	go func() {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("api server: %w", err)
		}
	}()
	log.Info("custosd: serving the API", slog.String("listen", ln.Addr().String()), slog.String("advertise", kcfg.APIAdvertise))
	servePprof(log)
	healthSrv, _, err := serveHealth(cfg.Health.Addr, node, defaultHealthLimits, log, fatal)
	if err != nil {
		_ = srv.Close()
		return err
	}

	// Shutdown runs on every return from here: API first, then (deferred
	// above) forwarder, node and token.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		log.Info("custosd: shutting down")
		if healthSrv != nil { // load balancers see the node gone first
			_ = healthSrv.Close()
		}
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("custosd: API requests still in flight at shutdown", slog.Any("err", err))
			_ = srv.Close()
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, before the node closes
	defer cancel()
	switch {
	case cfg.Bootstrap:
		if err := bootstrap(runCtx, node, log); err != nil {
			return err
		}
	case len(cfg.Join) > 0:
		wg.Go(func() {
			if err := join(runCtx, node, cfg.Join, clientTLS, log); err != nil {
				fatal <- err
			}
		})
	}

	select {
	case <-ctx.Done():
		log.Info("custosd: signal received")
		return nil
	case err := <-fatal:
		return err
	}
}

// openToken opens the node's HSM token; a failure the configuration can fix
// (module, token label, PIN) is a *configError.
func openToken(cfg *nodecfg.Config) (hsm.Token, error) {
	// SoftHSM reads SOFTHSM2_CONF when the module is first loaded.
	if cfg.HSM.SoftHSMConf != "" {
		if err := os.Setenv("SOFTHSM2_CONF", cfg.HSM.SoftHSMConf); err != nil {
			return nil, fmt.Errorf("set SOFTHSM2_CONF: %w", err)
		}
	}
	hcfg := pkcs11.Config{Module: cfg.HSM.Module, TokenLabel: cfg.HSM.TokenLabel, PINFile: cfg.HSM.PINFile, PINEnv: cfg.HSM.PINEnv}
	tok, err := pkcs11.Open(hcfg)
	if err != nil {
		if errors.Is(err, hsm.ErrNoPIN) || errors.Is(err, hsm.ErrWrongPIN) || errors.Is(err, hsm.ErrTokenNotFound) || errors.Is(err, hsm.ErrModule) {
			return nil, &configError{fmt.Errorf("hsm %v: %w", hcfg, err)}
		}
		return nil, fmt.Errorf("hsm %v: %w", hcfg, err)
	}
	return tok, nil
}

// bootstrap forms the cluster on a node with no state; a node with state
// gets ErrAlreadyBootstrapped, which is fine. Waiting for leadership is
// retried until ctx ends.
func bootstrap(ctx context.Context, node *keysvc.Node, log *slog.Logger) error {
	for attempt := 0; ; attempt++ {
		err := node.Bootstrap(ctx)
		switch {
		case err == nil:
			log.Info("custosd: cluster bootstrapped")
			return nil
		case errors.Is(err, keysvc.ErrAlreadyBootstrapped):
			log.Info("custosd: cluster state present; not bootstrapping again")
			return nil
		case errors.Is(err, keysvc.ErrNoQuorum), errors.Is(err, keysvc.ErrNotLeader):
			log.Warn("custosd: bootstrap not done yet; retrying", slog.Any("err", err))
		default:
			return fmt.Errorf("bootstrap: %w", err)
		}
		if !sleep(ctx, backoff(attempt)) {
			return nil // shutting down
		}
	}
}

// join asks the nodes at endpoints, with backoff, to add this node until the
// leader has, unless the node already is a registered voter. It returns nil
// when joined or when ctx ends, and an error when the cluster refused for
// good (wrong region, identity or conflicting registration): retrying would
// only log more denials.
func join(ctx context.Context, node *keysvc.Node, endpoints []string, tc *tls.Config, log *slog.Logger) error {
	self := node.Info()
	if isVoter(node.Status(), self.ID) {
		log.Info("custosd: already a member of the cluster; not joining")
		return nil
	}
	c, err := client.New(client.Config{Endpoints: endpoints, TLS: tc, Timeout: joinAttempt})
	if err != nil {
		return &configError{fmt.Errorf("join: %w", err)}
	}
	defer c.Close()
	for attempt := 0; ; attempt++ {
		res, err := c.Join(ctx, client.NodeInfo(self))
		switch {
		case err == nil:
			log.Info("custosd: joined the cluster", slog.String("leader", res.Leader))
			return nil
		case ctx.Err() != nil:
			return nil
		case client.IsCode(err, errcode.CeremonyRequired):
			desc, _ := json.Marshal(client.NodeInfo(self))
			return fmt.Errorf("join refused: officers must first execute a node.add ceremony for %s, then restart this node.\n"+
				"Give them this node description as node.json (custos officer propose node.add --node node.json):\n%s\n%w", self.ID, desc, err)
		case client.IsCode(err, errcode.Forbidden, errcode.RegionNotAllowed, errcode.Conflict, errcode.BadRequest,
			errcode.MalformedRequest, errcode.TooLarge):
			return fmt.Errorf("join refused by the cluster: %w", err)
		}
		log.Warn("custosd: join not done yet; retrying", slog.Int("attempt", attempt+1), slog.Any("err", err))
		if !sleep(ctx, backoff(attempt)) {
			return nil
		}
		if isVoter(node.Status(), self.ID) { // added meanwhile (an answer lost on the way)
			log.Info("custosd: joined the cluster")
			return nil
		}
	}
}

// isVoter reports whether id is registered and a voter in st.
func isVoter(st keysvc.Status, id string) bool {
	return slices.ContainsFunc(st.Members, func(m keysvc.Member) bool { return m.ID == id && m.Registered && m.Voter })
}

// backoff is the wait before retry attempt+1: exponential from
// joinMinBackoff, capped, with ±20% jitter.
func backoff(attempt int) time.Duration {
	d := joinMaxBackoff
	if attempt < 10 {
		d = min(joinMinBackoff<<attempt, joinMaxBackoff)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rateLimits is the API's view of the [rate_limits] section.
func rateLimits(c nodecfg.RateLimits) httpapi.RateLimits {
	return httpapi.RateLimits{
		Read: httpapi.RateLimit(c.Read), KeyOp: httpapi.RateLimit(c.KeyOp), Ceremony: httpapi.RateLimit(c.Ceremony),
		Admin: httpapi.RateLimit(c.Admin), Refused: httpapi.RateLimit(c.Refused),
	}
}
