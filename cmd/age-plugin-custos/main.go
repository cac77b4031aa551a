// Command age-plugin-custos lets a stock age decrypt Custos backup
// archives: disaster recovery without the agent.
//
// An archive's file key is in a "custos" stanza, wrapped by a Custos KEK.
// With this plugin on $PATH and an identity file naming the cluster, age
// asks the cluster to unwrap it, as the agent would (authorised by the
// KEK's policy for the client certificate, and logged):
//
//	age-plugin-custos --identity --env /etc/custos/agent.env > custos.identity
//	age -d -i custos.identity archive.age | zstd -d | tar -x
//
// The identity (AGE-PLUGIN-CUSTOS-1…) encodes where to find the cluster:
// an env file of shell exports (CUSTOS_ADDR, CUSTOS_CLIENT_CERT,
// CUSTOS_CLIENT_KEY, CUSTOS_CA, as `custos dev up` writes) and/or the
// values themselves (--addr, --cert, --key, --ca); anything it leaves out
// is read from the environment age runs the plugin in. It holds paths,
// not keys: the client key stays in its file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
)

const (
	envAddr = client.EnvAddr
	envCert = client.EnvCert
	envKey  = client.EnvKey
	envCA   = client.EnvCA
)

// config is an identity's payload (JSON).
type config struct {
	V    int    `json:"v"`
	Env  string `json:"env,omitempty"`
	Addr string `json:"addr,omitempty"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	CA   string `json:"ca,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	p, err := plugin.New("custos")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fs := flag.NewFlagSet("age-plugin-custos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p.RegisterFlags(fs)
	mkIdentity := fs.Bool("identity", false, "print an identity (for an age identity file) naming the cluster")
	var c config
	fs.StringVar(&c.Env, "env", "", "env file of shell exports ("+envAddr+", "+envCert+", "+envKey+", "+envCA+")")
	fs.StringVar(&c.Addr, "addr", "", "API base URLs, comma-separated")
	fs.StringVar(&c.Cert, "cert", "", "client certificate file")
	fs.StringVar(&c.Key, "key", "", "client key file")
	fs.StringVar(&c.CA, "ca", "", "cluster CA certificate file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *mkIdentity {
		s, err := encodeIdentity(c)
		if err != nil {
			fmt.Fprintln(stderr, "age-plugin-custos:", err)
			return 1
		}
		fmt.Fprintf(stdout, "# custos identity: unwraps through the cluster (%s)\n%s\n", describe(c), s)
		return 0
	}
	if fs.Lookup("age-plugin").Value.String() == "" {
		fmt.Fprintln(stderr, "age-plugin-custos: run by age (age -d -i IDENTITY-FILE), or with --identity to make an identity file; see -h")
		return 2
	}
	p.HandleIdentity(func(data []byte) (age.Identity, error) {
		cl, err := newClient(data)
		if err != nil {
			return nil, err
		}
		return custosage.NewIdentity(context.Background(), cl), nil
	})
	return p.Main()
}

func describe(c config) string {
	if c.Env != "" {
		return "env file " + c.Env
	}
	if c.Addr != "" {
		return c.Addr
	}
	return "from the environment"
}

// encodeIdentity makes paths absolute and encodes c.
func encodeIdentity(c config) (string, error) {
	c.V = 1
	for _, p := range []*string{&c.Env, &c.Cert, &c.Key, &c.CA} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", err
		}
		*p = abs
	}
	if c.Env != "" {
		if _, err := client.ReadEnvFile(c.Env); err != nil {
			return "", err
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return plugin.EncodeIdentity("custos", b), nil
}

// newClient resolves an identity's payload: its own values, then its env
// file, then the environment.
func newClient(data []byte) (*client.Client, error) {
	var c config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.V != 1 {
		return nil, errors.New("custos identity: malformed (make a new one with age-plugin-custos --identity)")
	}
	st, err := client.ResolveSettings(client.Settings{Addr: c.Addr, TLSFiles: identity.TLSFiles{Cert: c.Cert, Key: c.Key, CA: c.CA}}, c.Env)
	if err != nil {
		return nil, fmt.Errorf("custos identity: %w", err)
	}
	if st.Addr == "" || st.Cert == "" || st.Key == "" || st.CA == "" {
		return nil, fmt.Errorf("custos identity: no cluster to ask: %s, %s, %s and %s are needed (in the identity, its env file or the environment)", envAddr, envCert, envKey, envCA)
	}
	return client.New(st.Config(30 * time.Second))
}
