// Env files: the shell exports `custos dev up` writes (CUSTOS_ADDR,
// CUSTOS_CA, CUSTOS_CLIENT_CERT, …), read without a shell. Nothing in them is
// exported to the process, except SOFTHSM2_CONF (ProcessEnvVars).

package client

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/identity"
)

// ReadEnvFile reads KEY=VALUE lines, optionally prefixed by "export", with
// values bare, 'single-quoted' or "double-quoted" (Go/shell escapes). Blank
// lines and # comments are skipped. It is the format of `custos dev up`'s
// env files, which the CLI's --env flag and age-plugin-custos read.
func ReadEnvFile(path string) (map[string]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE", path, n)
		}
		switch {
		case strings.HasPrefix(v, `"`):
			if v, err = strconv.Unquote(v); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: bad quoting", path, n, k)
			}
		case strings.HasPrefix(v, "'"):
			if len(v) < 2 || !strings.HasSuffix(v, "'") || strings.Contains(v[1:len(v)-1], "'") {
				return nil, fmt.Errorf("%s:%d: %s: bad quoting", path, n, k)
			}
			v = v[1 : len(v)-1]
		}
		vars[k] = v
	}
	return vars, sc.Err()
}

// The variables (in the environment or an env file) that say where a
// client connects and with which TLS files.
const (
	EnvAddr = "CUSTOS_ADDR"        // comma-separated API base URLs
	EnvCert = "CUSTOS_CLIENT_CERT" // client certificate (PEM)
	EnvKey  = "CUSTOS_CLIENT_KEY"  // its key
	EnvCA   = "CUSTOS_CA"          // cluster CA certificate
)

// Settings say where a client connects (Addr: comma-separated API base
// URLs) and with which TLS files; "" is unset.
type Settings struct {
	Addr string
	identity.TLSFiles
}

// ProcessEnvVars are the env-file variables that configure a library this
// process loads rather than the client: SOFTHSM2_CONF, which SoftHSM reads
// once, when its PKCS#11 module is first loaded (an officer key on a SoftHSM
// token). ApplyProcessEnv sets them; every other variable of an env file stays
// out of the process's environment.
var ProcessEnvVars = []string{"SOFTHSM2_CONF"}

// ApplyProcessEnv sets, in this process's environment, each of ProcessEnvVars
// that vars (an env file's) sets and the environment does not (unset or
// empty), and returns the names it set. A variable already in the environment
// wins: the module may already have been loaded with it. Call it before any
// PKCS#11 token opens; later, a changed value has no effect on a loaded module.
func ApplyProcessEnv(vars map[string]string) ([]string, error) {
	var set []string
	for _, k := range ProcessEnvVars {
		v, ok := vars[k]
		if !ok || v == "" || os.Getenv(k) != "" {
			continue
		}
		if err := os.Setenv(k, v); err != nil {
			return set, fmt.Errorf("set %s from the env file: %w", k, err)
		}
		set = append(set, k)
	}
	return set, nil
}

// ResolveSettings fills s's unset fields from the env file at envFile (if
// not ""), then from the environment. It also applies the env file's
// ProcessEnvVars to this process (see ApplyProcessEnv), so that a command
// that resolves its settings first opens its token with them.
func ResolveSettings(s Settings, envFile string) (Settings, error) {
	vars := map[string]string{}
	for _, k := range []string{EnvAddr, EnvCert, EnvKey, EnvCA} {
		vars[k] = os.Getenv(k)
	}
	if envFile != "" {
		fv, err := ReadEnvFile(envFile)
		if err != nil {
			return s, err
		}
		if _, err := ApplyProcessEnv(fv); err != nil {
			return s, err
		}
		for k := range vars {
			if v, ok := fv[k]; ok {
				vars[k] = v
			}
		}
	}
	for _, f := range []struct {
		field *string
		name  string
	}{{&s.Addr, EnvAddr}, {&s.Cert, EnvCert}, {&s.Key, EnvKey}, {&s.CA, EnvCA}} {
		if *f.field == "" {
			*f.field = vars[f.name]
		}
	}
	return s, nil
}

// Config is the client configuration of s, with timeout.
func (s Settings) Config(timeout time.Duration) Config {
	var endpoints []string
	for _, a := range strings.Split(s.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			endpoints = append(endpoints, a)
		}
	}
	return Config{Endpoints: endpoints, TLSFiles: s.TLSFiles, Timeout: timeout}
}
