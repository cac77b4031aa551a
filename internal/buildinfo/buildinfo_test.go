package buildinfo

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "github.com/custos-eu/custos", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-05T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"}, {Key: "-tags", Value: "x"}}}
	in := FromBuildInfo(bi)
	want := Info{Version: "v1.2.3", Revision: "abc123", Time: "2026-12-05T10:00:00Z", Modified: true, GoVersion: "go1.27.3"}
	if in != want {
		t.Fatalf("got %+v, want %+v", in, want)
	}
	var b bytes.Buffer
	in.WriteText(&b, "custosd")
	for _, s := range []string{"custosd v1.2.3\n", "revision: abc123 (modified", "time:     2026-12-05T10:00:00Z", "go:       go1.27.3"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, b.String())
		}
	}
}

func TestFromBuildInfoWithoutVCS(t *testing.T) {
	in := FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"}})
	if in.Version != "(devel)" || in.Revision != "" || in.Modified {
		t.Fatalf("got %+v", in)
	}
	var b bytes.Buffer
	in.WriteText(&b, "custos")
	if !strings.Contains(b.String(), "revision: unknown (built without version control information)") {
		t.Errorf("text:\n%s", b.String())
	}
	if Read().GoVersion == "" {
		t.Error("Read: no Go version in a test binary")
	}
}
