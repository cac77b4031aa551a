package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/officer"
)

// Demo officers: Create makes their keys, InitOfficers names them at init.
var DemoOfficers = []string{"alice", "bob", "carol"}

// DemoQuorum and DemoThreshold are what InitOfficers sets.
const (
	DemoQuorum    = 2
	DemoThreshold = 2
)

// OfficersDir holds the demo officers' files:
//
//	NAME.key, NAME.pub      the officer key (encrypted under DIR/officers/passphrase) and bundle
//	NAME-tls.pem, .key      the officer's client certificate (role officer, name NAME)
//	NAME.env                shell exports: CUSTOS_ADDR, CUSTOS_CA, CUSTOS_CLIENT_CERT/KEY
//	                        (the officer's certificate), CUSTOS_OFFICER_KEY and
//	                        CUSTOS_OFFICER_PASSPHRASE_FILE, for custos officer … --env
//	passphrase              the demo passphrase of every demo key (0600)
func (c *Cluster) OfficersDir() string { return filepath.Join(c.Dir, "officers") }

// OfficerTLS names officer name's client certificate files.
func (c *Cluster) OfficerTLS(name string) identity.TLSFiles {
	base := filepath.Join(c.OfficersDir(), name+"-tls")
	return identity.TLSFiles{Cert: base + ".pem", Key: base + ".key", CA: c.caFile()}
}

// OfficerKey is the path of officer name's key file; PassphraseFile the
// demo passphrase that opens it.
func (c *Cluster) OfficerKey(name string) string {
	k, _ := officer.KeyFiles(c.OfficersDir(), name)
	return k
}

func (c *Cluster) PassphraseFile() string { return filepath.Join(c.OfficersDir(), "passphrase") }

// OfficerEnv is the path of officer name's env file.
func (c *Cluster) OfficerEnv(name string) string { return filepath.Join(c.OfficersDir(), name+".env") }

// OfficerClient returns an API client with officer name's certificate.
func (c *Cluster) OfficerClient(name string) (*client.Client, error) {
	return client.New(client.Config{Endpoints: c.Endpoints(), TLSFiles: c.OfficerTLS(name), Timeout: 10 * time.Second})
}

// createOfficers writes the demo officers' keys (low scrypt work factor:
// development only), certificates and env files.
func (c *Cluster) createOfficers(ca *identity.CA) error {
	if err := os.MkdirAll(c.OfficersDir(), 0o700); err != nil {
		return err
	}
	var pass [16]byte
	rand.Read(pass[:])
	passphrase := []byte(hex.EncodeToString(pass[:]))
	if err := os.WriteFile(c.PassphraseFile(), append(passphrase, '\n'), 0o600); err != nil {
		return err
	}
	for _, name := range DemoOfficers {
		if _, err := officer.Keygen(c.OfficersDir(), officer.Config{Name: name, WorkFactor: officer.MinWorkFactor}, passphrase); err != nil {
			return fmt.Errorf("devcluster: officer %s: %w", name, err)
		}
		id := identity.Identity{Cluster: c.Name, Name: name, Role: identity.RoleOfficer, Region: Regions[0]}
		certPEM, keyPEM, err := ca.Issue(id, identity.IssueOptions{})
		if err != nil {
			return err
		}
		f := c.OfficerTLS(name)
		if err := identity.WriteKeyPair(f.Cert, f.Key, certPEM, keyPEM); err != nil {
			return err
		}
	}
	return nil
}

// writeOfficerEnvs writes DIR/officers/NAME.env for each demo officer.
func (c *Cluster) writeOfficerEnvs() error {
	if _, err := os.Stat(c.OfficersDir()); os.IsNotExist(err) {
		return nil // a cluster laid out before demo officers
	}
	for _, name := range DemoOfficers {
		var b strings.Builder
		exp := func(k, v string) { fmt.Fprintf(&b, "export %s=%q\n", k, v) }
		f := c.OfficerTLS(name)
		exp("CUSTOS_ADDR", strings.Join(c.Endpoints(), ","))
		exp("CUSTOS_CA", c.caFile())
		exp("CUSTOS_CLIENT_CERT", f.Cert)
		exp("CUSTOS_CLIENT_KEY", f.Key)
		exp("CUSTOS_OFFICER_KEY", c.OfficerKey(name))
		exp("CUSTOS_OFFICER_PASSPHRASE_FILE", c.PassphraseFile())
		if err := os.WriteFile(c.OfficerEnv(name), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// InitOfficers runs operator init (POST /v1/sys/init) with the demo
// officers, quorum DemoQuorum and default threshold DemoThreshold, unless
// the cluster is already initialized. The cluster must be up.
func (c *Cluster) InitOfficers(ctx context.Context) error {
	cl, err := c.Client(identity.RoleOperator)
	if err != nil {
		return err
	}
	defer cl.Close()
	st, err := cl.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("devcluster: init: %w", err)
	}
	if st.Initialized {
		return nil
	}
	in := client.InitRequest{Quorum: DemoQuorum, DefaultThreshold: DemoThreshold}
	for _, name := range DemoOfficers {
		_, pub := officer.KeyFiles(c.OfficersDir(), name)
		b, err := os.ReadFile(pub)
		if err != nil {
			return err
		}
		in.Officers = append(in.Officers, strings.TrimSuffix(string(b), "\n"))
	}
	if err := cl.Init(ctx, in); err != nil {
		return fmt.Errorf("devcluster: init: %w", err)
	}
	return nil
}
