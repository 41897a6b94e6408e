package codeshape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCodeShape(t *testing.T) {
	root := filepath.Join("..", "..")
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || (strings.HasPrefix(name, ".") && p != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".pb.go") {
			return nil
		}
		files++
		checkFile(t, root, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk the tree: %v", err)
	}
	if files < 100 {
		t.Fatalf("read only %d Go files under %s", files, root)
	}
}

func checkFile(t *testing.T, root, path string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Errorf("parse %s: %v", path, err)
		return
	}
	rel, _ := filepath.Rel(root, path)
	if n := fset.File(f.Pos()).LineCount(); n > MaxFileLines {
		t.Errorf("%s has %d lines, more than %d: split it by what its parts do", rel, n, MaxFileLines)
	}
	if !slices.Contains(CorePackages, filepath.ToSlash(filepath.Dir(rel))) {
		return
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
		if n := end - start + 1; n > MaxFuncLines {
			t.Errorf("%s:%d: func %s has %d lines, more than %d", rel, start, fd.Name.Name, n, MaxFuncLines)
		}
	}
}
