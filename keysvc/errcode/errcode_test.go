package errcode_test

import (
	"go/ast"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/custos-eu/custos/internal/srctest"
)

// The client SDK spells no code itself: each of its Code… constants is
// errcode's code of the same name (or a reqsig code), so server and client
// cannot diverge. And no two codes here share a string.
func TestCodesMatchTheClient(t *testing.T) {
	ours := srctest.Consts(t, ".")
	seen := map[string]string{}
	for name, v := range ours {
		lit, ok := v.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("errcode.%s is not a string literal", name)
			continue
		}
		s, _ := strconv.Unquote(lit.Value)
		if other, dup := seen[s]; dup {
			t.Errorf("errcode.%s and errcode.%s are both %q", name, other, s)
		}
		seen[s] = name
	}
	n := 0
	for name, v := range srctest.Consts(t, "../client") {
		if !strings.HasPrefix(name, "Code") {
			continue
		}
		n++
		sel, ok := v.(*ast.SelectorExpr)
		if !ok {
			t.Errorf("client.%s is not errcode.%s", name, strings.TrimPrefix(name, "Code"))
			continue
		}
		switch pkg := sel.X.(*ast.Ident).Name; pkg {
		case "reqsig":
		case "errcode":
			if want := strings.TrimPrefix(name, "Code"); sel.Sel.Name != want {
				t.Errorf("client.%s = errcode.%s, want errcode.%s", name, sel.Sel.Name, want)
			}
			if _, ok := ours[sel.Sel.Name]; !ok {
				t.Errorf("client.%s: no errcode.%s", name, sel.Sel.Name)
			}
		default:
			t.Errorf("client.%s = %s.%s, want errcode.%s", name, pkg, sel.Sel.Name, strings.TrimPrefix(name, "Code"))
		}
	}
	if n < 40 {
		t.Errorf("found %d client codes: is ../client still the SDK?", n)
	}
}
