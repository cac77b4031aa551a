// Package nodecfg is the custosd configuration file: a TOML document naming one
// node, its addresses, data directory, HSM token and TLS material. custosd reads
// it; `custos dev up` writes it. Secrets are never in it: the HSM PIN comes from
// a file or an environment variable it names.
package nodecfg

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is one node's configuration file.
type Config struct {
	NodeID  string `toml:"node_id"` // unique in the cluster; [a-z0-9._-]
	Region  string `toml:"region"`  // EU/EEA ISO 3166-1 alpha-2 code of the node's site
	Cluster string `toml:"cluster"` // cluster name; the key-op log origin is "custos/<cluster>"
	DataDir string `toml:"data_dir"`

	// Bootstrap forms a new single-node cluster when DataDir holds no state.
	// Exactly one node of a new cluster sets it.
	Bootstrap bool `toml:"bootstrap"`
	// AllowedRegions are the regions nodes may be in; fixed when the cluster is
	// bootstrapped (genesis), ignored afterwards.
	AllowedRegions []string `toml:"allowed_regions"`
	// Join lists API base URLs of existing members this node asks to join
	// through, when DataDir holds no state and Bootstrap is false.
	Join []string `toml:"join"`

	API         APIListener  `toml:"api"`
	Raft        RaftListener `toml:"raft"`
	HSM         HSM          `toml:"hsm"`
	TLS         TLS          `toml:"tls"`
	Log         Log          `toml:"log"`
	GroupCommit GroupCommit  `toml:"group_commit"`
	RaftTuning  RaftTuning   `toml:"raft_tuning"`
	RateLimits  RateLimits   `toml:"rate_limits,omitempty"`
	Health      Health       `toml:"health,omitempty"`
}

// Health is the node's health listener for load balancers and probes:
// unauthenticated plain HTTP serving only GET /livez and GET /readyz, with
// no cluster details. Off when Addr is empty. Bind it to an address only
// the load balancer or monitoring reaches; the mTLS GET /v1/sys/health on
// the API stays for detail.
type Health struct {
	// Addr is the host:port to bind, e.g. "127.0.0.1:8300". The host is an
	// IP address or a name; the port is a number (0 picks a free one, for
	// tests). It must differ from api.listen and raft.listen.
	Addr string `toml:"addr,omitempty"`
}

// RateLimits are the API's per-identity rate limits by route class (zero
// fields take the defaults of docs/operations.md, "Rate limits"), and how
// long identical denials are folded into one log entry.
type RateLimits struct {
	Read     RateLimit `toml:"read"`
	KeyOp    RateLimit `toml:"keyop"`
	Ceremony RateLimit `toml:"ceremony"`
	Admin    RateLimit `toml:"admin"`
	Refused  RateLimit `toml:"refused"`
	// DenialFoldWindow: 0 means the default (1m); a negative value
	// ("-1s") logs every denial on its own.
	DenialFoldWindow Duration `toml:"denial_fold_window"`
}

// RateLimit is a token bucket: rate requests per second, burst at once. A
// zero rate takes the default; a negative rate means no limit.
type RateLimit struct {
	Rate  float64 `toml:"rate"`
	Burst int     `toml:"burst"`
}

// RaftTuning adjusts replication; zero values take the defaults, which are
// right for production. Tests lower the snapshot bounds to exercise snapshots.
type RaftTuning struct {
	HeartbeatTimeout  Duration `toml:"heartbeat_timeout"`
	ElectionTimeout   Duration `toml:"election_timeout"`
	SnapshotInterval  Duration `toml:"snapshot_interval"`
	SnapshotThreshold uint64   `toml:"snapshot_threshold"` // log entries between snapshots
	TrailingLogs      uint64   `toml:"trailing_logs"`      // log entries kept after a snapshot
}

// APIListener is where the API listens, the address clients reach it at, and
// how long and how many connections one client may hold. Zero values take the
// defaults, which Load fills in.
type APIListener struct {
	Listen    string `toml:"listen"`    // host:port to bind
	Advertise string `toml:"advertise"` // host:port others dial; defaults to Listen

	// The http.Server's timeouts; the smallest of the first three bounds
	// the TLS handshake. WriteTimeout runs from the end of the request's
	// headers: it bounds reading the body, the handler and writing the
	// answer, so a client that does not read its answer is cut off after it.
	ReadHeaderTimeout Duration `toml:"read_header_timeout,omitempty"` // default 10s
	ReadTimeout       Duration `toml:"read_timeout,omitempty"`        // default 1m
	WriteTimeout      Duration `toml:"write_timeout,omitempty"`       // default 30s
	IdleTimeout       Duration `toml:"idle_timeout,omitempty"`        // default 2m
	// MaxConnsPerIP caps the open connections from one IP address; more
	// are closed at accept. Several agents behind one NAT address share it.
	MaxConnsPerIP int `toml:"max_conns_per_ip,omitzero"` // default 512
}

// RaftListener is where raft and the peer channel listen, the address peers
// reach it at, and the listener's bounds on inbound handshakes. Zero values
// take the raft package's defaults.
type RaftListener struct {
	Listen    string `toml:"listen"`    // host:port to bind
	Advertise string `toml:"advertise"` // host:port others dial; defaults to Listen

	// FirstBytesTimeout: a connection must begin its TLS handshake this soon
	// after it is accepted. Default 1s.
	FirstBytesTimeout Duration `toml:"first_bytes_timeout,omitempty"`
	// MaxHandshakesPerIP caps the handshakes in progress from one IP address
	// (of 64 at once in all). Nodes sharing an address share it. Default 4.
	MaxHandshakesPerIP int `toml:"max_handshakes_per_ip,omitzero"`
}

// HSM names the node's PKCS#11 token. The PIN is read from PINFile or PINEnv.
type HSM struct {
	Module     string `toml:"module"`
	TokenLabel string `toml:"token_label"`
	PINFile    string `toml:"pin_file"`
	PINEnv     string `toml:"pin_env"`
	// SoftHSMConf, for development with SoftHSM only: the SOFTHSM2_CONF file the
	// daemon sets in its environment before loading the module.
	SoftHSMConf string `toml:"softhsm_conf"`
}

// TLS is the node's certificate and the cluster CA, as PEM files. The
// certificate's key is the node's TLS key inside its HSM, never a file: the
// certificate is issued from `custosd -config FILE -csr`.
type TLS struct {
	Cert string `toml:"cert"`
	CA   string `toml:"ca"`
	// Key was the node's key file before node keys moved into the HSM. It
	// is read only to refuse it with ErrTLSKeyFile, never written.
	Key string `toml:"key,omitempty"`
}

// ErrTLSKeyFile is the error of a configuration that still names a node key
// file (tls.key), as a configuration from before node keys moved into the
// HSM does.
var ErrTLSKeyFile = errors.New("tls.key is set, but node TLS keys live in the HSM: remove tls.key, " +
	"run `custosd -config FILE -csr` and have the cluster CA sign it (the new certificate goes to tls.cert)")

// Log configures log/slog output on stderr.
type Log struct {
	Level  string `toml:"level"`  // debug, info (default), warn, error
	Format string `toml:"format"` // json (default) or text
}

// GroupCommit bounds how the leader batches key-op log entries into one raft command.
type GroupCommit struct {
	MaxEntries int      `toml:"max_entries"` // default 256
	MaxBytes   int      `toml:"max_bytes"`   // default 1 MiB
	MaxDelay   Duration `toml:"max_delay"`   // default 2ms
}

// Duration is a time.Duration written as a Go duration string ("2ms").
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Load reads and validates a configuration file, filling defaults. Unknown keys
// are an error, so a typo never silently falls back to a default.
func Load(path string) (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config %s: unknown key %q", path, und[0].String())
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Write writes c to path (0600).
func (c *Config) Write(path string) error {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

func (c *Config) setDefaults() {
	if c.API.Advertise == "" {
		c.API.Advertise = c.API.Listen
	}
	if c.Raft.Advertise == "" {
		c.Raft.Advertise = c.Raft.Listen
	}
	a := &c.API
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{
		{&a.ReadHeaderTimeout, 10 * time.Second},
		{&a.ReadTimeout, time.Minute},
		{&a.WriteTimeout, 30 * time.Second},
		{&a.IdleTimeout, 2 * time.Minute},
	} {
		if d.v.Duration == 0 {
			d.v.Duration = d.def
		}
	}
	if a.MaxConnsPerIP == 0 {
		a.MaxConnsPerIP = 512
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.GroupCommit.MaxEntries == 0 {
		c.GroupCommit.MaxEntries = 256
	}
	if c.GroupCommit.MaxBytes == 0 {
		c.GroupCommit.MaxBytes = 1 << 20
	}
	if c.GroupCommit.MaxDelay.Duration == 0 {
		c.GroupCommit.MaxDelay.Duration = 2 * time.Millisecond
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need(c.NodeID, "node_id")
	need(c.Region, "region")
	need(c.Cluster, "cluster")
	need(c.DataDir, "data_dir")
	need(c.API.Listen, "api.listen")
	need(c.Raft.Listen, "raft.listen")
	need(c.HSM.Module, "hsm.module")
	need(c.HSM.TokenLabel, "hsm.token_label")
	need(c.TLS.Cert, "tls.cert")
	if c.TLS.Key != "" {
		errs = append(errs, ErrTLSKeyFile)
	}
	need(c.TLS.CA, "tls.ca")
	if c.HSM.PINFile == "" && c.HSM.PINEnv == "" {
		errs = append(errs, errors.New("hsm.pin_file or hsm.pin_env is required (the PIN is never written in the config)"))
	}
	if c.Bootstrap && len(c.Join) > 0 {
		errs = append(errs, errors.New("bootstrap and join are exclusive: one node bootstraps, the others join it"))
	}
	if c.Bootstrap && len(c.AllowedRegions) == 0 {
		errs = append(errs, errors.New("allowed_regions is required to bootstrap a cluster"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: want json or text", c.Log.Format))
	}
	if c.GroupCommit.MaxEntries < 1 || c.GroupCommit.MaxBytes < 1 || c.GroupCommit.MaxDelay.Duration < 0 {
		errs = append(errs, errors.New("group_commit bounds must be positive"))
	}
	for _, l := range []struct {
		name string
		v    RateLimit
	}{{"read", c.RateLimits.Read}, {"keyop", c.RateLimits.KeyOp}, {"ceremony", c.RateLimits.Ceremony}, {"admin", c.RateLimits.Admin}, {"refused", c.RateLimits.Refused}} {
		if math.IsNaN(l.v.Rate) || math.IsInf(l.v.Rate, 0) || l.v.Burst < 0 {
			errs = append(errs, fmt.Errorf("rate_limits.%s: rate %v, burst %d: want a finite rate (negative for no limit) and a burst of 0 or more", l.name, l.v.Rate, l.v.Burst))
		}
	}
	a := c.API
	if a.ReadHeaderTimeout.Duration < 0 || a.ReadTimeout.Duration < 0 || a.WriteTimeout.Duration < 0 || a.IdleTimeout.Duration < 0 || a.MaxConnsPerIP < 0 {
		errs = append(errs, errors.New("api timeouts and max_conns_per_ip must not be negative (0 takes the default)"))
	}
	if c.Raft.FirstBytesTimeout.Duration < 0 || c.Raft.MaxHandshakesPerIP < 0 {
		errs = append(errs, errors.New("raft.first_bytes_timeout and raft.max_handshakes_per_ip must not be negative (0 takes the default)"))
	}
	if err := c.Health.validate(c.API.Listen, c.Raft.Listen); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validate checks Addr: empty (off), or host:port with a numeric port,
// not the API's or raft's listen address.
func (h Health) validate(api, raft string) error {
	if h.Addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(h.Addr)
	if err != nil {
		return fmt.Errorf("health.addr %q: want host:port, e.g. \"127.0.0.1:8300\" (leave it unset to serve no health listener)", h.Addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("health.addr %q: host %q is not an IP address or host name", h.Addr, host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		return fmt.Errorf("health.addr %q: port %q is not a number from 0 to 65535", h.Addr, port)
	}
	for _, o := range []struct{ name, addr string }{{"api.listen", api}, {"raft.listen", raft}} {
		if o.addr != "" && o.addr == h.Addr && !strings.HasSuffix(h.Addr, ":0") {
			return fmt.Errorf("health.addr %q is also %s: the health listener needs its own port", h.Addr, o.name)
		}
	}
	return nil
}

// LogValue is safe to log: the config holds no secrets, only where they are.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("node_id", c.NodeID), slog.String("region", c.Region), slog.String("cluster", c.Cluster),
		slog.String("data_dir", c.DataDir), slog.String("api", c.API.Advertise), slog.String("raft", c.Raft.Advertise),
		slog.String("hsm_token", c.HSM.TokenLabel), slog.Bool("bootstrap", c.Bootstrap),
		slog.String("health", c.Health.Addr))
}
