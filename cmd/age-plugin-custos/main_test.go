package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/custos-eu/custos/backup/archive"
	"github.com/custos-eu/custos/backup/custosage"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest/agentcluster"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// ageCLI finds Debian's age; the test is skipped without it unless
// CUSTOS_REQUIRE_SOFTHSM is set (then it fails).
func ageCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("age")
	if err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("age CLI not found (apt-get install -y age)")
		}
		t.Skip("age CLI not found (apt-get install -y age)")
	}
	return p
}

// A stock `age -d` with this plugin decrypts an archive made by the
// agent, unwrapping through the cluster; an agent from a region the KEK's
// policy leaves out is refused.
func TestStockAgeDecrypts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and starts a cluster")
	}
	ageBin := ageCLI(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "age-plugin-custos"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := agentcluster.New(t, "backups")
	ctx := context.Background()
	agent := env.Client(t, identity.RoleAgent, "agent-1")

	src := filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "payroll.csv"), []byte("alice,100\nbob,200\n"), 0o640)
	const id = "20261122T183000Z-00112233445566ff"
	rcp, err := custosage.NewOnlineRecipient(ctx, agent, "backups", wrapkey.Context{"dataset": "hr", "archive": id})
	if err != nil {
		t.Fatal(err)
	}
	var a, ix bytes.Buffer
	if _, err := archive.Create(ctx, []string{src}, &a, &ix, archive.CreateOptions{ArchiveID: id, Dataset: "hr", Recipient: rcp}); err != nil {
		t.Fatal(err)
	}
	archiveFile := filepath.Join(dir, "archive.age")
	os.WriteFile(archiveFile, a.Bytes(), 0o600)
	indexFile := filepath.Join(dir, "archive.index.age")
	os.WriteFile(indexFile, ix.Bytes(), 0o600)

	// An env file, as `custos dev up` writes, and an identity naming it.
	writeEnv := func(name, region string) string {
		files := env.PKI.Issue(t, identity.RoleAgent, name, region)
		envFile := filepath.Join(dir, name+".env")
		body := fmt.Sprintf("export %s=%q\nexport %s=%q\nexport %s=%q\nexport %s=%q\n",
			envAddr, strings.Join(env.URLs, ","), envCert, files.Cert, envKey, files.Key, envCA, files.CA)
		if err := os.WriteFile(envFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"--identity", "--env", envFile}, &out, &errOut); code != 0 {
			t.Fatalf("--identity: %d %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), "AGE-PLUGIN-CUSTOS-1") {
			t.Fatalf("identity output %q", out.String())
		}
		idFile := filepath.Join(dir, name+".identity")
		os.WriteFile(idFile, out.Bytes(), 0o600)
		return idFile
	}
	var ageDecrypt func(idFile, file string) ([]byte, string, error)
	ageD := func(idFile string) ([]byte, string, error) {
		return ageDecrypt(idFile, archiveFile)
	}
	ageDecrypt = func(idFile, file string) ([]byte, string, error) {
		cmd := exec.Command(ageBin, "-d", "-i", idFile, file)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		for _, k := range []string{envAddr, envCert, envKey, envCA} {
			cmd.Env = append(cmd.Env, k+"=")
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.Bytes(), stderr.String(), err
	}

	drID := writeEnv("agent-dr", "DE")
	plain, stderr, err := ageD(drID)
	if err != nil {
		t.Fatalf("age -d: %v\n%s", err, stderr)
	}
	// The plaintext is the zstd-compressed tar: read it back.
	zr, err := zstd.NewReader(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "sub/payroll.csv") {
			b, _ := io.ReadAll(tr)
			found = string(b) == "alice,100\nbob,200\n"
		}
	}
	if !found {
		t.Error("payroll.csv not in the decrypted archive")
	}
	// And with the zstd and tar CLIs, when present.
	if zstdBin, err := exec.LookPath("zstd"); err == nil {
		out := filepath.Join(dir, "out")
		os.MkdirAll(out, 0o700)
		cmd := exec.Command("sh", "-c", `"$1" -dc | tar -x -C "$2"`, "sh", zstdBin, out)
		cmd.Stdin = bytes.NewReader(plain)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zstd | tar: %v %s", err, b)
		}
		if b, err := os.ReadFile(filepath.Join(out, src, "sub", "payroll.csv")); err != nil || !strings.HasPrefix(string(b), "alice") {
			t.Errorf("extracted with the CLIs: %q %v", b, err)
		}
	}

	// The index: age -d | zstd -d gives its JSON lines, a header then
	// one record per entry, with the file's SHA-256.
	plainIndex, stderr, err := ageDecrypt(drID, indexFile)
	if err != nil {
		t.Fatalf("age -d of the index: %v\n%s", err, stderr)
	}
	zr, err = zstd.NewReader(bytes.NewReader(plainIndex))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the index does not decompress: %v", err)
	}
	if !strings.HasPrefix(string(lines), `{"format":"`+archive.IndexFormat+`"`) || !strings.Contains(string(lines), `payroll.csv","type":"file"`) ||
		!strings.Contains(string(lines), fmt.Sprintf(`"sha256":"%x"`, sha256.Sum256([]byte("alice,100\nbob,200\n")))) {
		t.Errorf("index lines:\n%s", lines)
	}
	if zstdBin, err := exec.LookPath("zstd"); err == nil {
		cmd := exec.Command(zstdBin, "-dc")
		cmd.Stdin = bytes.NewReader(plainIndex)
		if out, err := cmd.Output(); err != nil || !bytes.Equal(out, lines) {
			t.Errorf("zstd -dc of the index: %v", err)
		}
	}

	// An agent certificate from NL: the cluster refuses, age fails.
	if out, stderr, err := ageD(writeEnv("agent-nl", "NL")); err == nil || len(out) != 0 || !strings.Contains(stderr, "region_denied") {
		t.Errorf("NL agent: %v, %d bytes out\n%s", err, len(out), stderr)
	}
}

func TestIdentityFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--identity") {
		t.Errorf("no args: %d %q", code, errOut.String())
	}
	if code := run([]string{"--identity", "--env", "/nonexistent/env"}, &out, &errOut); code != 1 {
		t.Errorf("missing env file: %d", code)
	}
	if _, err := newClient([]byte(`{"v":2}`)); err == nil {
		t.Error("version 2 identity accepted")
	}
	if _, err := newClient([]byte(`{"v":1,"x":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
	t.Setenv(envAddr, "")
	if _, err := newClient([]byte(`{"v":1}`)); err == nil || !strings.Contains(err.Error(), "no cluster to ask") {
		t.Errorf("empty identity: %v", err)
	}
}
