// Env files: the shell exports `custos dev up` writes (CUSTOS_ADDR,
// CUSTOS_CA, CUSTOS_CLIENT_CERT, …), read without a shell.

package client

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
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
