// CLI scenario tests as transcripts: testdata/script/*.txtar, each a
// testscript (github.com/rogpeppe/go-internal/testscript) that runs the
// real custos main and checks its output, exit status and files.
//
// Run one script (its file name without .txtar):
//
//	go test -run TestScripts/officer_keygen ./cmd/custos/
//
// Add -testwork to keep the scripts' work directories. A script that
// compares output with a file of its own archive (usage: cmp stderr
// usage.txt) is brought up to date by running it with -update, which
// rewrites that file in the .txtar; read the diff before committing it:
//
//	go test -run TestScripts/usage ./cmd/custos/ -update
//
// Besides testscript's own conditions, [softhsm] holds when softhsm2-util is
// installed (and fails the script when $CUSTOS_REQUIRE_SOFTHSM is set and
// it is not). Besides testscript's own commands, scripts have:
//
//	custos ARGS...       run custos; `! custos` wants it to fail. The
//	                     custos is this test binary (see TestMain), with
//	                     the lowest scrypt work factor and no terminal.
//	                     When $NEVER_PRINTED is set, its output must not
//	                     hold that value.
//	exits N              the last custos exited with status N (after
//	                     `! custos`: 1 is a refusal, 2 a usage error)
//	perm MODE FILE       FILE's permission bits are MODE (e.g. 0600)
//	keypair KEY PUB PASSFILE ALG
//	                     KEY (opened with the passphrase in PASSFILE)
//	                     signs what PUB verifies; its classical algorithm
//	                     is ALG. Sets $FINGERPRINT to PUB's fingerprint.
//	match NAME REGEXP    set $NAME to REGEXP's first group in the last stdout
//	wrapped FILE KEK V   FILE holds a wrapped key (raw or base64) of KEK
//	                     version V
//	cluster start N      start an N-node in-memory cluster "test" behind
//	                     its leader's API (keysvctest; mutual TLS)
//	cluster lose-next-approval-answer
//	                     the next approval commits but its answer is lost,
//	                     as when the leader dies between the two
//	cluster quorum N     the node behind the API has officer quorum N
//	cluster fake DIR     serve instead a fake cluster "dev" for status: a
//	                     leader node-1 with 4 log entries, node-2
//	                     unreachable, node-3 not yet a voter; write
//	                     DIR/env and set $ROOT_HASH to its checkpoint's
//	                     root hash
//	cluster no-leader    the fake knows no leader and is not ready
//	envfile FILE ROLE NAME REGION [VAR=VALUE...]
//	                     write FILE as `custos dev up` writes DIR/env: the
//	                     cluster's address and a certificate for
//	                     ROLE/NAME in REGION, and the extra variables
//	source FILE          set the variables of env file FILE, as a shell's
//	                     `. FILE` would
//	token LABEL          a fresh SoftHSM token (hsmtest.SoftHSM): sets
//	                     $TOKEN to its label, $PKCS11_URI to a URI of
//	                     object custos-officer on it, and SOFTHSM2_CONF

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/custos-eu/custos/hsm/hsmtest"
	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/httpapi/httpapitest"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/keysvctest"
	"github.com/custos-eu/custos/keysvc/ledger"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// -testwork (keep the work directories) is testscript's own flag.
var updateScripts = flag.Bool("update", false, "rewrite the files that scripts cmp against with the actual output")

// TestMain runs the tests, or, when a script runs this binary as custos,
// the real main. It does not use testscript.Main, which would exit before
// hsmtest.Main removes the SoftHSM directory; TestScripts puts this binary
// on the scripts' $PATH instead.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "custos" {
		keygenWorkFactor = officer.MinWorkFactor
		readTTYPassphrase = func(string) ([]byte, error) { return nil, errNoTTY }
		main() // exits
	}
	hsmtest.Main(m)
}

func TestScripts(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "custos")); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           filepath.Join("testdata", "script"),
		UpdateScripts: *updateScripts,
		Condition:     scriptCondition,
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", bin+string(os.PathListSeparator)+e.Getenv("PATH"))
			// The CLI keeps the log size it has seen in the user's cache directory.
			e.Setenv("XDG_CACHE_HOME", filepath.Join(e.WorkDir, ".cache"))
			tb, ok := e.T().(testing.TB)
			if !ok {
				return errors.New("testscript's T is not a testing.TB")
			}
			e.Values[scriptKey{}] = &scriptState{tb: tb}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"custos":  cmdCustos,
			"exits":   cmdExits,
			"perm":    cmdPerm,
			"keypair": cmdKeypair,
			"match":   cmdMatch,
			"wrapped": cmdWrapped,
			"cluster": cmdCluster,
			"envfile": cmdEnvFile,
			"source":  cmdSource,
			"token":   cmdToken,
		},
	})
}

// scriptCondition: [softhsm] is whether softhsm2-util is installed; its
// absence is an error when $CUSTOS_REQUIRE_SOFTHSM is set.
func scriptCondition(cond string) (bool, error) {
	if cond != "softhsm" {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			return false, errors.New("softhsm2-util not found and CUSTOS_REQUIRE_SOFTHSM is set")
		}
		return false, nil
	}
	return true, nil
}

type scriptKey struct{}

// scriptState is one script's: its test, the last exit status, its cluster.
type scriptState struct {
	tb     testing.TB
	exit   int
	pki    *httpapitest.PKI
	apiURL string
	node   *keysvc.Node      // the node behind apiURL, the leader when it started
	fake   *httpapitest.Fake // cluster fake's
	// loseAnswer makes the next approval commit and its answer get
	// lost, as when the leader dies between the two.
	loseAnswer atomic.Bool
}

func state(ts *testscript.TestScript) *scriptState {
	return ts.Value(scriptKey{}).(*scriptState)
}

func cmdCustos(ts *testscript.TestScript, neg bool, args []string) {
	st := state(ts)
	err := ts.Exec("custos", args...)
	st.exit = 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		st.exit = exit.ExitCode()
	case err != nil:
		ts.Fatalf("custos: %v", err)
	}
	if secret := ts.Getenv("NEVER_PRINTED"); secret != "" {
		if strings.Contains(ts.ReadFile("stdout")+ts.ReadFile("stderr"), secret) {
			ts.Fatalf("custos printed $NEVER_PRINTED")
		}
	}
	if neg && st.exit == 0 {
		ts.Fatalf("custos succeeded unexpectedly")
	}
	if !neg && st.exit != 0 {
		ts.Fatalf("custos: exit status %d", st.exit)
	}
}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: exits N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	if got := state(ts).exit; got != want {
		ts.Fatalf("custos exited %d, want %d", got, want)
	}
}

func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: perm MODE FILE")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := fi.Mode().Perm(); got != os.FileMode(want) {
		ts.Fatalf("%s: mode %#o, want %#o", args[1], got, want)
	}
}

func cmdKeypair(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: keypair KEY PUB PASSFILE ALG")
	}
	pass := strings.TrimSuffix(ts.ReadFile(args[2]), "\n")
	s, err := officerhsm.Load(ts.MkAbs(args[0]), []byte(pass))
	ts.Check(err)
	defer s.Close()
	pub, err := officer.ParsePublicKey([]byte(ts.ReadFile(args[1])))
	ts.Check(err)
	if !pub.Equal(s.Public()) {
		ts.Fatalf("%s and %s hold different keys", args[0], args[1])
	}
	var d [32]byte
	rand.Read(d[:])
	sig, err := s.Sign(d)
	ts.Check(err)
	ts.Check(pub.Verify(d, sig))
	if pub.Alg() != officer.Alg(args[3]) {
		ts.Fatalf("classical algorithm %s, want %s", pub.Alg(), args[3])
	}
	ts.Setenv("FINGERPRINT", pub.Fingerprint())
}

func cmdMatch(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: match NAME REGEXP")
	}
	re, err := regexp.Compile(`(?m)` + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("stdout does not match %q", args[1])
	}
	ts.Setenv(args[0], m[1])
}

func cmdWrapped(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: wrapped FILE KEK VERSION")
	}
	blob, err := parseWrapped([]byte(ts.ReadFile(args[0])))
	ts.Check(err)
	b, err := wrapkey.Parse(blob)
	ts.Check(err)
	if got := fmt.Sprintf("%s %d", b.KEKID, b.KEKVersion); got != args[1]+" "+args[2] {
		ts.Fatalf("%s: a key of KEK %s, want %s %s", args[0], got, args[1], args[2])
	}
}

const clusterUsage = "usage: cluster start N | cluster lose-next-approval-answer | cluster quorum N | cluster fake DIR | cluster no-leader (start or fake once, first)"

func cmdCluster(ts *testscript.TestScript, neg bool, args []string) {
	st := state(ts)
	if neg || len(args) == 0 {
		ts.Fatalf(clusterUsage)
	}
	started := st.node != nil || st.fake != nil
	switch verb := args[0]; {
	case verb == "start" && len(args) == 2 && !started:
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		st.pki = httpapitest.NewPKI(st.tb, "test")
		c := keysvctest.NewCluster(st.tb, n, keysvctest.Options{CAs: st.pki.Pool()})
		st.node = c.Leader()
		id := st.node.Info().ID
		api := httpapi.New(st.node, httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
		st.apiURL = st.pki.Serve(st.tb, id, keysvctest.Region(id), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/approvals") && st.loseAnswer.CompareAndSwap(true, false) {
				api.ServeHTTP(httptest.NewRecorder(), r)
				panic(http.ErrAbortHandler)
			}
			api.ServeHTTP(w, r)
		})).URL
	case verb == "lose-next-approval-answer" && len(args) == 1 && st.node != nil:
		st.loseAnswer.Store(true)
	case verb == "quorum" && len(args) == 2 && st.node != nil:
		if got := strconv.Itoa(st.node.Status().Quorum); got != args[1] {
			ts.Fatalf("node %s: quorum %s, want %s", st.node.Info().ID, got, args[1])
		}
	case verb == "fake" && len(args) == 2 && !started:
		dir := ts.MkAbs(args[1])
		ts.Check(os.MkdirAll(dir, 0o700))
		st.fake, _ = statusCluster(st.tb, dir)
		note, err := st.fake.Checkpoint(context.Background())
		ts.Check(err)
		cp, _, err := ledger.VerifyCheckpoint(note, "custos/dev", st.fake.Key())
		ts.Check(err)
		ts.Setenv("ROOT_HASH", base64.StdEncoding.EncodeToString(cp.Hash[:]))
	case verb == "no-leader" && len(args) == 1 && st.fake != nil:
		st.fake.SetLeader("", "")
		st.fake.SetNotReady(fmt.Errorf("%w: no leader known (raft state Candidate)", keysvc.ErrNotReady))
	default:
		ts.Fatalf(clusterUsage)
	}
}

func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	st := state(ts)
	if len(args) < 4 || neg || st.node == nil {
		ts.Fatalf("usage: envfile FILE ROLE NAME REGION [VAR=VALUE...] (after cluster start)")
	}
	files := st.pki.Issue(st.tb, identity.Role(args[1]), args[2], args[3])
	vars := []string{envAddr + "=" + st.apiURL, envCA + "=" + files.CA, envCert + "=" + files.Cert, envKey + "=" + files.Key}
	var b strings.Builder
	for _, kv := range append(vars, args[4:]...) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			ts.Fatalf("envfile: %q: want VAR=VALUE", kv)
		}
		fmt.Fprintf(&b, "export %s=%q\n", k, v)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o600))
}

func cmdSource(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: source FILE")
	}
	vars, err := client.ReadEnvFile(ts.MkAbs(args[0]))
	ts.Check(err)
	for k, v := range vars {
		ts.Setenv(k, v)
	}
}

func cmdToken(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: token LABEL")
	}
	cfg := hsmtest.SoftHSM(state(ts).tb, args[0])[0]
	ts.Setenv("SOFTHSM2_CONF", os.Getenv("SOFTHSM2_CONF"))
	ts.Setenv("TOKEN", cfg.TokenLabel)
	ts.Setenv("PKCS11_URI", fmt.Sprintf("pkcs11:token=%s;object=custos-officer?module-path=%s&pin-source=file:%s", cfg.TokenLabel, cfg.Module, cfg.PINFile))
}
