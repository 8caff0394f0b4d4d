package lite

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestErrorfCalls checks the calls of Errorf in the guest init's packages
// as vet checks fmt.Errorf's (vet checks Sprintf's, -printf.funcs in the
// Makefile, but allows %w only in fmt.Errorf): a literal format whose
// verbs lite knows, one argument per verb, and %w only on errors named
// err or made by a call (the init's habit).
func TestErrorfCalls(t *testing.T) {
	files, _ := filepath.Glob("../*.go")
	more, _ := filepath.Glob("../protocol/*.go")
	files = append(files, more...)
	more, _ = filepath.Glob("*.go")
	files = append(files, more...)
	fset := token.NewFileSet()
	calls := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isErrorf(call.Fun) {
				return true
			}
			calls++
			pos := fset.Position(call.Pos())
			if call.Ellipsis.IsValid() {
				return true // a wrapper's: Errorf(prefix+format, args...)
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok {
				t.Errorf("%s: Errorf with a format that is not a string literal", pos)
				return true
			}
			format, _ := strconv.Unquote(lit.Value)
			verbs := verbsOf(format)
			args := call.Args[1:]
			if len(verbs) != len(args) {
				t.Errorf("%s: %q has %d verbs and %d arguments", pos, format, len(verbs), len(args))
				return true
			}
			for i, v := range verbs {
				if !strings.ContainsRune("svqdxfw", v) {
					t.Errorf("%s: %q: verb %%%c is not one lite knows", pos, format, v)
				}
				if v == 'w' && !isErrorExpr(args[i]) {
					t.Errorf("%s: %q: %%w of a %T, want an error", pos, format, args[i])
				}
			}
			return true
		})
	}
	if calls < 50 {
		t.Errorf("found %d calls of Errorf, want the init's (more than 50)", calls)
	}
}

func isErrorf(fun ast.Expr) bool {
	switch f := fun.(type) {
	case *ast.SelectorExpr:
		x, ok := f.X.(*ast.Ident)
		return ok && x.Name == "lite" && f.Sel.Name == "Errorf"
	case *ast.Ident:
		return f.Name == "Errorf"
	}
	return false
}

// verbsOf lists the verbs of a format, %% left out.
func verbsOf(format string) []rune {
	var vs []rune
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("+#0- .123456789", format[i]) >= 0 {
			i++
		}
		if i < len(format) && format[i] != '%' {
			vs = append(vs, rune(format[i]))
		}
	}
	return vs
}

// isErrorExpr: an identifier named e or errno, or starting with err or Err,
// a field Err, or a call.
func isErrorExpr(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name == "err" || e.Name == "e" || e.Name == "errno" || strings.HasPrefix(e.Name, "err") || strings.HasPrefix(e.Name, "Err")
	case *ast.SelectorExpr:
		return strings.HasPrefix(e.Sel.Name, "Err") || e.Sel.Name == "Err"
	case *ast.CallExpr:
		return true
	}
	return false
}
