// Package buildinfo is what a Custos binary knows of its own build, from
// runtime/debug.ReadBuildInfo: the module version, the VCS revision, its
// time and whether the tree had uncommitted changes, and the Go version.
// `custosd --version`, `custos version` and the custos_build_info metric
// print it.
package buildinfo

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Info describes one build. Fields the build did not record (a binary built
// with -buildvcs=false, or by `go test`) are empty; Version is "(devel)"
// for a build from a work tree rather than a module download.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Time      string `json:"time,omitempty"` // of the revision, RFC 3339
	Modified  bool   `json:"modified"`       // built from a tree with uncommitted changes
	GoVersion string `json:"go_version"`
}

// Read returns this binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts an Info from bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = "unknown"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// WriteText writes in for a person: the program's name and version on the
// first line, then one line each for the revision, its time and Go.
func (in Info) WriteText(w io.Writer, program string) error {
	rev := in.Revision
	switch {
	case rev == "":
		rev = "unknown (built without version control information)"
	case in.Modified:
		rev += " (modified: built with uncommitted changes)"
	}
	t := in.Time
	if t == "" {
		t = "unknown"
	}
	_, err := fmt.Fprintf(w, "%s %s\n  revision: %s\n  time:     %s\n  go:       %s\n", program, in.Version, rev, t, in.GoVersion)
	return err
}
