package protocol

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// codeGroups returns the values of the constants in codes.go, by group:
// the error codes, then the notice codes.
func codeGroups(t *testing.T) [][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var groups [][]string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		var values []string
		for _, spec := range gd.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				s, err := strconv.Unquote(v.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				values = append(values, s)
			}
		}
		groups = append(groups, values)
	}
	if len(groups) != 2 {
		t.Fatalf("codes.go has %d groups of constants; want 2, errors then notices", len(groups))
	}
	return groups
}

// TestCodesMatchPROTOCOL checks codes.go against chat/PROTOCOL.md: the
// error codes are the rows of its table of errors, and every notice code,
// and every error code said to be a notice too, is in its list of notice
// codes.
func TestCodesMatchPROTOCOL(t *testing.T) {
	groups := codeGroups(t)
	errs, notices := groups[0], groups[1]
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)

	seen := make(map[string]bool)
	for _, c := range append(errs, notices...) {
		if seen[c] {
			t.Errorf("code %q defined twice", c)
		}
		seen[c] = true
	}

	_, table, _ := strings.Cut(text, "\n## Errors\n")
	table, _, _ = strings.Cut(table, "\n## ")
	rows := make(map[string]bool)
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|").FindAllStringSubmatch(table, -1) {
		rows[m[1]] = true
	}
	for _, c := range errs {
		if !rows[c] {
			t.Errorf("error code %q is not in PROTOCOL.md's table of errors", c)
		}
	}
	for r := range rows {
		if !slices.Contains(errs, r) {
			t.Errorf("PROTOCOL.md lists the error %q, which codes.go lacks", r)
		}
	}

	_, list, ok := strings.Cut(text, "\nNotice codes: ")
	list, _, _ = strings.Cut(list, "\n\n")
	if !ok {
		t.Fatal(`PROTOCOL.md has no "Notice codes:" paragraph`)
	}
	alsoNotices := []string{CodeNoRoom, CodeLoginRequired, CodeClusterDown}
	for _, c := range append(notices, alsoNotices...) {
		if !strings.Contains(list, "`"+c+"`") {
			t.Errorf("notice code %q is not in PROTOCOL.md's list of notice codes", c)
		}
	}
}
