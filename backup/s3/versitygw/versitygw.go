// Package versitygw locates the versitygw S3 server binary (the pinned
// release `make tools` installs) for the tests and the demo. It imports no
// test code.
package versitygw

import (
	"debug/buildinfo"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Version is the versitygw release tests and the demo are written against
// (the Makefile installs it).
const Version = "v1.8.0"

// Region is the region the server is started with.
const Region = "us-east-1"

// FindBinary returns the path of versitygw, looking in PATH, then $GOBIN,
// then $(go env GOPATH)/bin (and $HOME/go/bin). The first candidate built
// from Version wins; failing that, the first one found.
func FindBinary() (string, error) {
	var cands []string
	if p, err := exec.LookPath("versitygw"); err == nil {
		cands = append(cands, p)
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) >= 1 && strings.TrimSpace(lines[0]) != "" {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
		}
		if len(lines) >= 2 {
			for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				if p != "" {
					dirs = append(dirs, filepath.Join(p, "bin"))
				}
			}
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		for _, p := range filepath.SplitList(gp) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return "", errors.New("versitygw not found in PATH, $GOBIN or $(go env GOPATH)/bin; install it with `make tools` (go install github.com/versity/versitygw/cmd/versitygw@" + Version + ")")
	}
	for _, c := range cands {
		if BinaryVersion(c) == Version {
			return c, nil
		}
	}
	return cands[0], nil
}

// BinaryVersion returns the module version recorded in a Go binary ("" if unknown).
func BinaryVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	return bi.Main.Version
}
