package state

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/custos-eu/custos/"

// nondeterministic are the packages that bring a clock-free state machine
// I/O, randomness or an HSM.
var nondeterministic = []string{
	"net", "net/http", "crypto/rand", "math/rand", "math/rand/v2", "os/exec",
	module + "hsm", "github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11",
	"github.com/hashicorp/raft", module + "raft", module + "keysvc/peer", module + "keysvc",
}

// neverLinked may not be among this package's dependencies at all.
var neverLinked = []string{
	"net/http", "os/exec", "github.com/hashicorp/raft", module + "raft", module + "keysvc/peer", module + "keysvc",
}

// leaves are the dependencies allowed to import some nondeterministic
// package, and which: leaf packages whose pure halves the state machine
// uses beside halves that sign, generate keys or talk to an HSM. Other
// modules' packages may use crypto/rand (key generation they offer) and
// nothing else of the list. The list may shrink, never grow.
var leaves = map[string][]string{
	module + "keysvc/identity":        {"crypto/rand", "net"},
	module + "keysvc/ledger":          {"crypto/rand"},
	module + "keysvc/kek":             {module + "hsm"},
	module + "keysvc/officer":         {"crypto/rand", module + "hsm"},
	module + "hsm":                    {"crypto/rand", "github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11"},
	"github.com/ThalesGroup/crypto11": {"github.com/miekg/pkcs11"},
}

// The state machine's files import nothing that does I/O, keeps time or
// draws randomness, and call no clock: Apply stays deterministic.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		local := map[string]string{} // name in the file -> import path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(nondeterministic, path) {
				t.Errorf("%s imports %s", name, path)
			}
			n := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				n = imp.Name.Name
			}
			local[n] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch local[x.Name] {
			case "time":
				switch sel.Sel.Name {
				case "Now", "Since", "Until", "Sleep", "After", "AfterFunc", "Tick", "NewTimer", "NewTicker":
					t.Errorf("%s: time.%s: times come in the command", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			case "math/rand", "math/rand/v2", "crypto/rand":
				t.Errorf("%s: rand.%s", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

// Among this package's dependencies, only the leaves above reach a
// nondeterministic package, and none links the node runtime, raft or
// net/http.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}|{{.Standard}}|{{join .Imports \",\"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		path, std, imports := parts[0], parts[1] == "true", strings.Split(parts[2], ",")
		if slices.Contains(neverLinked, path) {
			t.Errorf("%s is linked", path)
		}
		if std || path == module+"keysvc/state" {
			continue
		}
		allowed, ok := leaves[path]
		if !ok && !strings.HasPrefix(path, module) {
			allowed = []string{"crypto/rand"}
		}
		for _, imp := range imports {
			if slices.Contains(nondeterministic, imp) && !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s", path, imp)
			}
		}
	}
}
