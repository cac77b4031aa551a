package state

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/custos-eu/custos/"

// nondeterministic are the packages that would bring the state machine
// I/O, randomness or an HSM.
var nondeterministic = []string{
	"net", "net/http", "crypto/rand", "math/rand", "math/rand/v2", "os/exec",
	module + "hsm", "github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11",
	"github.com/hashicorp/raft", module + "raft", module + "keysvc/peer", module + "keysvc",
}

// State's own files import nothing nondeterministic and call no clock or
// random source: times come in the command. What state links through other
// packages is checked by internal/archtest.
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
