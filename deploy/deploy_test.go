package deploy

// Checks of the packaging: the systemd unit is what systemd accepts
// (systemd-analyze verify, and its offline security score) and keeps the
// hardening it promises; the sysusers and tmpfiles files make the user and
// the configuration directory; the example configuration loads; the
// Containerfile builds what the repository has with the Go go.mod requires.

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/custos-eu/custos/keysvc/nodecfg"
)

const (
	unitFile      = "systemd/custosd.service"
	exampleConfig = "custosd.example.toml"
	containerfile = "Containerfile"
	// The unit's binary and configuration, which the docs and the Containerfile use too.
	binPath    = "/usr/local/bin/custosd"
	configPath = "/etc/custos/custosd.toml"
)

// unit is a parsed unit file: section → key → values in order (a key may
// repeat; an empty assignment is kept as "").
type unit map[string]map[string][]string

func parseUnit(t *testing.T, b []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not KEY=VALUE in a section (continuation lines are not used here): %q", unitFile, n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of key in section, failing otherwise.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) != 1 {
		t.Fatalf("[%s] %s: %d assignments %q, want exactly one", section, key, len(vs), vs)
	}
	return vs[0]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadExample(t *testing.T) *nodecfg.Config {
	t.Helper()
	c, err := nodecfg.Load(exampleConfig)
	if err != nil {
		t.Fatalf("the example configuration does not load: %v", err)
	}
	return c
}

// The hardening docs/hsm-tokens.md promises, directive by directive.
func TestUnitHardening(t *testing.T) {
	u := parseUnit(t, readFile(t, unitFile))
	for key, want := range map[string]string{
		"User":                     "custos",
		"Group":                    "custos",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"PrivateDevices":           "yes",
		"CapabilityBoundingSet":    "",
		"AmbientCapabilities":      "",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "2",
		"StateDirectory":           "custos",
		"StateDirectoryMode":       "0700",
		"UMask":                    "0077",
		"LimitCORE":                "0",
		"MemoryDenyWriteExecute":   "yes",
	} {
		if got := u.one(t, "Service", key); got != want {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	if ty := u["Service"]["Type"]; len(ty) > 0 && ty[0] != "simple" && ty[0] != "exec" {
		t.Errorf("Type=%s: custosd does not fork or notify", ty[0])
	}
	for _, k := range []string{"Environment", "EnvironmentFile", "PassEnvironment", "DynamicUser"} {
		if v, ok := u["Service"][k]; ok {
			t.Errorf("[Service] %s=%q: the PIN comes from hsm.pin_file, and the user is the fixed custos", k, v)
		}
	}

	// The data directory is the only writable path, and it is the example's data_dir.
	c := loadExample(t)
	if rw := u.one(t, "Service", "ReadWritePaths"); rw != c.DataDir || "/var/lib/"+u.one(t, "Service", "StateDirectory") != c.DataDir {
		t.Errorf("ReadWritePaths=%s, StateDirectory=%s: want the example's data_dir %s", rw, u.one(t, "Service", "StateDirectory"), c.DataDir)
	}

	// Locked memory: internal/secmem mlocks whole pages; the limit must hold at least one.
	mem := u.one(t, "Service", "LimitMEMLOCK")
	if n := parseSize(t, mem); n < int64(os.Getpagesize()) {
		t.Errorf("LimitMEMLOCK=%s is less than a page (%d)", mem, os.Getpagesize())
	}

	// ExecStart runs the installed binary with the configuration path, by the flag custosd defines.
	exec := strings.Fields(u.one(t, "Service", "ExecStart"))
	if !slices.Equal(exec, []string{binPath, "-config", configPath}) {
		t.Errorf("ExecStart=%q, want %s -config %s", exec, binPath, configPath)
	}
	if main := readFile(t, "../cmd/custosd/main.go"); !bytes.Contains(main, []byte(`fs.String("config", `)) {
		t.Error(`cmd/custosd/main.go defines no -config flag: ExecStart and the docs name one`)
	}
	if got := u.one(t, "Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%s", got)
	}
}

// parseSize reads a systemd size ("8M", "65536", "infinity" as the largest).
func parseSize(t *testing.T, s string) int64 {
	t.Helper()
	if s == "infinity" {
		return 1 << 62
	}
	mult := int64(1)
	if i := strings.IndexAny(s, "KMG"); i == len(s)-1 {
		mult = map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}[s[i]]
		s = s[:i]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	return n * mult
}

// lookTool finds a systemd tool; without it the test skips, or fails when
// CUSTOS_REQUIRE_SOFTHSM is set (make test, whose deps install Debian's systemd).
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatalf("%s not found and CUSTOS_REQUIRE_SOFTHSM is set (make deps installs Debian's systemd package)", name)
		}
		t.Skipf("%s not found (Debian's systemd package)", name)
	}
	return p
}

// stubbedUnit writes the unit into a temporary directory with ExecStart's
// binary replaced by an executable stub there (systemd-analyze verify checks
// that the binary exists; it runs nothing), after applying edit.
func stubbedUnit(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	stub := filepath.Join(dir, "custosd")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(readFile(t, unitFile)), "ExecStart="+binPath+" ", "ExecStart="+stub+" ", 1)
	if !strings.Contains(text, stub) {
		t.Fatalf("no ExecStart=%s in %s", binPath, unitFile)
	}
	path := filepath.Join(dir, "custosd.service")
	if err := os.WriteFile(path, []byte(edit(text)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// analyze runs systemd-analyze offline: it needs no systemd as PID 1 (the
// unit is loaded into a private manager that starts nothing).
func analyze(t *testing.T, tool string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// systemd-analyze verify accepts the unit with no warning at all; a unit with
// a misspelt directive or a bad value is reported, so the check can fail.
func TestUnitVerify(t *testing.T) {
	tool := lookTool(t, "systemd-analyze")
	if out, err := analyze(t, tool, "verify", "--man=no", stubbedUnit(t, func(s string) string { return s })); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	for name, edit := range map[string]func(string) string{
		"misspelt directive": func(s string) string {
			return strings.Replace(s, "NoNewPrivileges=yes", "NoNewPrivilege=yes", 1)
		},
		"bad value": func(s string) string { return strings.Replace(s, "ProtectSystem=strict", "ProtectSystem=stricter", 1) },
	} {
		out, err := analyze(t, tool, "verify", "--man=no", stubbedUnit(t, edit))
		if err == nil && strings.TrimSpace(out) == "" {
			t.Errorf("%s: systemd-analyze verify said nothing", name)
		}
	}
}

// systemd's own offline exposure score stays at 1.2 ("OK"); --threshold makes
// systemd-analyze fail above 1.5, as it does for the unit without its hardening.
func TestUnitSecurityScore(t *testing.T) {
	tool := lookTool(t, "systemd-analyze")
	if out, err := analyze(t, tool, "security", "--offline=yes", "--threshold=15", stubbedUnit(t, func(s string) string { return s })); err != nil {
		t.Fatalf("systemd-analyze security: exposure above 1.5 (%v)\n%s", err, lastLine(out))
	}
	bare := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if k, _, _ := strings.Cut(l, "="); strings.HasPrefix(k, "Protect") || strings.HasPrefix(k, "Private") ||
				strings.HasPrefix(k, "Restrict") || strings.HasPrefix(k, "SystemCall") || strings.HasPrefix(k, "Capability") ||
				k == "NoNewPrivileges" || k == "MemoryDenyWriteExecute" || k == "LockPersonality" {
				continue
			}
			keep = append(keep, l)
		}
		return strings.Join(keep, "\n")
	}
	if out, err := analyze(t, tool, "security", "--offline=yes", "--threshold=15", stubbedUnit(t, bare)); err == nil {
		t.Fatalf("the unit without its hardening passed the threshold:\n%s", lastLine(out))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// custos.sysusers makes a custos system user with no login, and
// custos.tmpfiles makes /etc/custos root:custos 0750, in a scratch root.
func TestDeploySysusersTmpfiles(t *testing.T) {
	sysusers := lookTool(t, "systemd-sysusers")
	tmpfiles := lookTool(t, "systemd-tmpfiles")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	if out, err := exec.Command(sysusers, "--root="+root, abs("systemd/custos.sysusers")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd := string(readFile(t, filepath.Join(root, "etc/passwd")))
	m := regexp.MustCompile(`(?m)^custos:x:(\d+):(\d+):[^:]*:/var/lib/custos:/usr/sbin/nologin$`).FindStringSubmatch(passwd)
	if m == nil {
		t.Fatalf("no custos system user with nologin in\n%s", passwd)
	}
	if uid, _ := strconv.Atoi(m[1]); uid == 0 || uid >= 1000 {
		t.Errorf("custos has uid %d, want a system uid (1-999)", uid)
	}
	if os.Geteuid() != 0 {
		t.Skip("systemd-tmpfiles sets owners: needs root")
	}
	if out, err := exec.Command(tmpfiles, "--root="+root, "--create", abs("systemd/custos.tmpfiles")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(root, "etc/custos"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 || !fi.IsDir() {
		t.Errorf("/etc/custos: mode %v, want a directory 0750", fi.Mode())
	}
}

// The example configuration loads and validates as it is, and names the
// paths the unit and the Containerfile use.
func TestExampleConfig(t *testing.T) {
	c := loadExample(t)
	if !c.Bootstrap || len(c.AllowedRegions) == 0 || c.HSM.PINFile == "" || c.HSM.PINEnv != "" {
		t.Errorf("the example should bootstrap with allowed regions and a PIN file: %+v", c)
	}
	for name, p := range map[string]string{"hsm.pin_file": c.HSM.PINFile, "tls.cert": c.TLS.Cert, "tls.ca": c.TLS.CA} {
		if filepath.Dir(p) != filepath.Dir(configPath) {
			t.Errorf("%s = %s: keep it in %s, which custos.tmpfiles makes readable by custosd", name, p, filepath.Dir(configPath))
		}
	}
	if c.TLS.Key != "" {
		t.Error("the example names tls.key")
	}
	if c.Log.Level != "info" || c.Log.Format != "json" {
		t.Errorf("log %+v", c.Log)
	}
}

// The commented [health] table loads once uncommented, on a build whose
// nodecfg has it (it is another change of the same release); before that the
// test says so and skips.
func TestExampleConfigHealth(t *testing.T) {
	b := readFile(t, exampleConfig)
	re := regexp.MustCompile(`(?m)^# (\[health\]|addr = .*)$`)
	if n := len(re.FindAll(b, -1)); n != 2 {
		t.Fatalf("want a commented [health] table with addr; found %d of its lines", n)
	}
	p := filepath.Join(t.TempDir(), "custosd.toml")
	if err := os.WriteFile(p, re.ReplaceAll(b, []byte("$1")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := nodecfg.Load(p)
	if err != nil {
		t.Fatalf("with [health] uncommented: %v", err)
	}
	if cfg.Health.Addr == "" {
		t.Fatal("with [health] uncommented, the config has no health address")
	}
}

// containerLine is one instruction of the Containerfile, continuation lines joined.
type containerLine struct{ op, args string }

func parseContainerfile(t *testing.T) []containerLine {
	t.Helper()
	var out []containerLine
	var cur strings.Builder
	for _, l := range strings.Split(string(readFile(t, containerfile)), "\n") {
		s := strings.TrimSpace(l)
		if cur.Len() == 0 && (s == "" || strings.HasPrefix(s, "#")) {
			continue
		}
		if strings.HasSuffix(s, `\`) {
			cur.WriteString(strings.TrimSuffix(s, `\`) + " ")
			continue
		}
		cur.WriteString(s)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, containerLine{strings.ToUpper(op), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// The Containerfile builds with the Go toolchain go.mod and the Makefile name,
// with cgo, the commands the repository has, on the same Debian release as its
// runtime, and runs custosd as a non-root user with the unit's configuration path.
func TestDeployContainerfile(t *testing.T) {
	lines := parseContainerfile(t)
	gomod := string(readFile(t, "../go.mod"))
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("no go line in go.mod")
	}
	wantToolchain := "go" + m[1]
	mk := regexp.MustCompile(`(?m)^export GOTOOLCHAIN := (\S+)$`).FindStringSubmatch(string(readFile(t, "../Makefile")))
	if mk == nil || mk[1] != wantToolchain {
		t.Fatalf("Makefile GOTOOLCHAIN %v, go.mod wants %s", mk, wantToolchain)
	}

	args := map[string]string{}
	var stages []string // FROM images, ARGs resolved
	env := map[string]string{}
	var user, entry, cmd string
	var builds []string
	copied := false
	for _, l := range lines {
		switch l.op {
		case "ARG":
			k, v, _ := strings.Cut(l.args, "=")
			args[k] = v
		case "FROM":
			img, _, _ := strings.Cut(l.args, " ")
			if strings.HasPrefix(img, "${") {
				img = args[strings.Trim(img, "${}")]
			}
			stages = append(stages, img)
		case "ENV":
			for _, kv := range strings.Fields(l.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "RUN":
			if strings.HasPrefix(l.args, "go build") {
				builds = append(builds, l.args)
			}
		case "COPY":
			if strings.HasPrefix(l.args, "--from=build /out/custosd ") && strings.HasSuffix(l.args, " /usr/local/bin/") {
				copied = true
			}
		case "USER":
			user = l.args
		case "ENTRYPOINT":
			entry = l.args
		case "CMD":
			cmd = l.args
		}
	}
	if env["GOTOOLCHAIN"] != wantToolchain || env["CGO_ENABLED"] != "1" {
		t.Errorf("build ENV GOTOOLCHAIN=%q CGO_ENABLED=%q, want %s and 1 (PKCS#11 needs cgo)", env["GOTOOLCHAIN"], env["CGO_ENABLED"], wantToolchain)
	}
	if len(stages) != 2 {
		t.Fatalf("stages %q, want a builder and a runtime", stages)
	}
	if bv := regexp.MustCompile(`golang:1\.(\d+)-(\w+)$`).FindStringSubmatch(stages[0]); bv == nil {
		t.Errorf("builder %q is not golang:1.N-<debian release>", stages[0])
	} else if minor, _ := strconv.Atoi(bv[1]); minor < 21 || !strings.HasSuffix(stages[1], "debian:"+bv[2]+"-slim") {
		t.Errorf("builder %s, runtime %s: want Go ≥ 1.21 (to fetch %s) and the same Debian release (cgo links glibc)", stages[0], stages[1], wantToolchain)
	}
	if len(builds) != 1 {
		t.Fatalf("go build lines %q, want one", builds)
	}
	var pkgs []string
	for _, f := range strings.Fields(builds[0]) {
		if strings.HasPrefix(f, "./") {
			pkgs = append(pkgs, f)
		}
	}
	if !slices.Contains(pkgs, "./cmd/custosd") || !strings.Contains(builds[0], "-o /out/") {
		t.Errorf("go build %q: want ./cmd/custosd into /out/", builds[0])
	}
	for _, p := range pkgs {
		src, err := os.ReadFile(filepath.Join("..", p, "main.go"))
		if err != nil || !bytes.Contains(src, []byte("package main")) {
			t.Errorf("the Containerfile builds %s, which is not a command in the repository (%v)", p, err)
		}
	}
	if !copied {
		t.Error("the runtime stage does not copy /out/custosd into /usr/local/bin/")
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("USER %q: custosd must not run as root", user)
	}
	if entry != `["`+binPath+`"]` || cmd != `["-config", "`+configPath+`"]` {
		t.Errorf("ENTRYPOINT %s CMD %s, want %s -config %s as in the unit", entry, cmd, binPath, configPath)
	}
	if args["WITH_SOFTHSM"] != "0" {
		t.Errorf("WITH_SOFTHSM defaults to %q, want 0 (SoftHSM only on request)", args["WITH_SOFTHSM"])
	}
	c := loadExample(t)
	for _, port := range []string{c.API.Listen, c.Raft.Listen} {
		_, p, _ := strings.Cut(port, ":")
		found := false
		for _, l := range lines {
			if l.op == "EXPOSE" && slices.Contains(strings.Fields(l.args), p) {
				found = true
			}
		}
		if !found {
			t.Errorf("EXPOSE lacks %s (example config %s)", p, port)
		}
	}
}
